package skiff

import (
	"fmt"

	skiffpb "github.com/skiffkv/skiff/proto"
	"google.golang.org/protobuf/proto"
)

// commandFormatV1 is the first byte of every log entry skiff proposes: a
// protobuf-encoded skiffpb.Command follows. A later format gets a new byte,
// so replicas running different versions refuse what they cannot read
// instead of misreading it.
const commandFormatV1 byte = 1

// encodeCommand serialises a validated command for Raft.
func encodeCommand(c *skiffpb.Command) ([]byte, error) {
	size := proto.Size(c)
	buf := make([]byte, 1, 1+size)
	buf[0] = commandFormatV1
	out, err := proto.MarshalOptions{Deterministic: true}.MarshalAppend(buf, c)
	if err != nil {
		return nil, fmt.Errorf("encode command: %w", err)
	}
	return out, nil
}

// decodeCommand parses a log entry. It never panics; an entry it cannot
// read is reported as ErrCorrupt.
func decodeCommand(data []byte) (*skiffpb.Command, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: empty command", ErrCorrupt)
	}
	if data[0] != commandFormatV1 {
		return nil, fmt.Errorf("%w: unknown command format %d", ErrCorrupt, data[0])
	}
	var c skiffpb.Command
	if err := proto.Unmarshal(data[1:], &c); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return &c, nil
}
