// Package command is the format of skiff's entries in the Raft log: the
// operations a leader proposes and every replica applies, in the order
// the log gives them.
//
// It is an on-disk format, kept apart from the protobuf messages of the
// client API on purpose: changing the API must not change what a data
// dir holds, and a replica must either apply an entry exactly as every
// other replica does or stop. Decode therefore refuses anything it cannot
// read completely: a damaged entry (its checksum does not match), a
// truncated one, or one written by a later version of skiff.
//
// Format 2, the current one:
//
//	version  1 byte, 2
//	crc      4 bytes little-endian, CRC-32C (Castagnoli) of the body
//	body     count uvarint (at least 1), then count operations:
//	             kind   1 byte (1 put, 2 delete)
//	             cond   1 byte (0 always, 1 absent, 2 mod revision)
//	             rev    uvarint, only with cond 2
//	             key    uvarint length, bytes
//	             value  uvarint length, bytes, only for a put
//
// and nothing after the last operation. The operations of one entry are
// applied in order at one revision, the entry's Raft index; each has its
// own condition and outcome. Later kinds (transactions) get new kind
// bytes, which older versions refuse.
//
// Format 1, written before format 2 existed, is a version byte 1 followed
// by a protobuf message; it has no checksum. Decode still reads it (see
// v1.go), so that data dirs written then keep opening.
package command

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"unicode/utf8"
)

// Errors returned by Decode. Both are fatal for the replica that meets
// them: applying anything else in the entry's place would make it differ
// from the others.
var (
	// ErrCorrupt: the entry is damaged (checksum, truncation, structure).
	ErrCorrupt = errors.New("damaged")
	// ErrUnsupported: the entry was written in a format or with an
	// operation this version of skiff does not know.
	ErrUnsupported = errors.New("written by a later version of skiff")
)

// Kind is what an operation does.
type Kind uint8

const (
	Put    Kind = 1
	Delete Kind = 2
)

// Cond is the condition an operation needs to take effect.
type Cond uint8

const (
	// Always: no condition.
	Always Cond = 0
	// Absent: the key does not exist.
	Absent Cond = 1
	// ModRevision: the key exists and its ModRevision is Op.Rev.
	ModRevision Cond = 2
)

// Op is one operation of an entry.
type Op struct {
	Kind  Kind
	Cond  Cond
	Rev   uint64 // with ModRevision
	Key   string
	Value []byte // for Put
}

// Format versions, the first byte of every entry.
const (
	V1 byte = 1
	V2 byte = 2
)

const headerLen = 5 // version and checksum

// maxOps bounds the operations in one entry, so that a damaged count
// cannot make Decode reserve much.
const maxOps = 1 << 16

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Encode returns the format 2 encoding of ops. It does not validate the
// operations; the caller has.
func Encode(ops []Op) []byte {
	size := headerLen + binary.MaxVarintLen64
	for _, op := range ops {
		size += 2 + 3*binary.MaxVarintLen64 + len(op.Key) + len(op.Value)
	}
	b := make([]byte, headerLen, size)
	b[0] = V2
	b = binary.AppendUvarint(b, uint64(len(ops)))
	for _, op := range ops {
		b = append(b, byte(op.Kind), byte(op.Cond))
		if op.Cond == ModRevision {
			b = binary.AppendUvarint(b, op.Rev)
		}
		b = binary.AppendUvarint(b, uint64(len(op.Key)))
		b = append(b, op.Key...)
		if op.Kind == Put {
			b = binary.AppendUvarint(b, uint64(len(op.Value)))
			b = append(b, op.Value...)
		}
	}
	binary.LittleEndian.PutUint32(b[1:headerLen], crc32.Checksum(b[headerLen:], castagnoli))
	return b
}

// Decode reads an entry in format 2 or 1. Values are copies: the result
// does not alias data.
func Decode(data []byte) ([]Op, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: empty entry", ErrCorrupt)
	}
	switch data[0] {
	case V2:
		return decodeV2(data)
	case V1:
		return decodeV1(data[1:])
	}
	return nil, fmt.Errorf("%w: format %d", ErrUnsupported, data[0])
}

// Verify checks an entry's checksum without decoding it; an entry in
// format 1, which has none, passes if its version byte is known.
func Verify(data []byte) error {
	if len(data) == 0 {
		return fmt.Errorf("%w: empty entry", ErrCorrupt)
	}
	switch data[0] {
	case V1:
		return nil
	case V2:
		return checksum(data)
	}
	return fmt.Errorf("%w: format %d", ErrUnsupported, data[0])
}

func checksum(data []byte) error {
	if len(data) < headerLen {
		return fmt.Errorf("%w: %d bytes", ErrCorrupt, len(data))
	}
	want := binary.LittleEndian.Uint32(data[1:headerLen])
	if got := crc32.Checksum(data[headerLen:], castagnoli); got != want {
		return fmt.Errorf("%w: checksum %08x, want %08x", ErrCorrupt, got, want)
	}
	return nil
}

func decodeV2(data []byte) ([]Op, error) {
	if err := checksum(data); err != nil {
		return nil, err
	}
	d := reader{b: data[headerLen:]}
	n := d.uvarint()
	if d.err == nil && (n == 0 || n > maxOps) {
		return nil, fmt.Errorf("%w: %d operations", ErrCorrupt, n)
	}
	ops := make([]Op, 0, min(n, 64))
	for i := uint64(0); i < n && d.err == nil; i++ {
		var op Op
		op.Kind, op.Cond = Kind(d.byte()), Cond(d.byte())
		if d.err != nil {
			break
		}
		if op.Kind != Put && op.Kind != Delete {
			return nil, fmt.Errorf("%w: operation kind %d", ErrUnsupported, op.Kind)
		}
		if op.Cond > ModRevision {
			return nil, fmt.Errorf("%w: condition %d", ErrUnsupported, op.Cond)
		}
		if op.Cond == ModRevision {
			op.Rev = d.uvarint()
		}
		op.Key = string(d.field())
		if op.Kind == Put {
			op.Value = append([]byte{}, d.field()...)
		}
		ops = append(ops, op)
	}
	if d.err == nil && len(d.b) > 0 {
		d.err = fmt.Errorf("%d bytes after the last operation", len(d.b))
	}
	if d.err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, d.err)
	}
	for _, op := range ops {
		if !utf8.ValidString(op.Key) || op.Key == "" {
			return nil, fmt.Errorf("%w: invalid key %q", ErrCorrupt, op.Key)
		}
	}
	return ops, nil
}

// reader consumes b; after the first error every read returns zero.
type reader struct {
	b   []byte
	err error
}

var errTruncated = errors.New("truncated")

func (r *reader) byte() byte {
	if r.err != nil || len(r.b) == 0 {
		r.err = errTruncated
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errTruncated
		return 0
	}
	r.b = r.b[n:]
	return v
}

// field reads a length-prefixed byte string; it aliases r.b.
func (r *reader) field() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = errTruncated
		return nil
	}
	f := r.b[:n]
	r.b = r.b[n:]
	return f
}
