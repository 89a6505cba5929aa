package hclogslog

import (
	"errors"
	"io"
	"net"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// unreachablePeer lists the Raft errors that report a call to a peer
// failing. A peer that is restarting, or briefly cut off, fails them for
// a few heartbeats; Raft retries with a backoff and the member catches
// up when it is back. At ERROR they made every rolling restart look like
// an incident, so they are warnings when the call failed for want of a
// connection (unreachable). Any other failure of the same call (a
// malformed answer, a peer refusing the request) stays an ERROR.
var unreachablePeer = map[string]bool{
	"failed to appendEntries to":              true, // replication.go
	"failed to heartbeat to":                  true,
	"failed to pipeline appendEntries":        true,
	"failed to start pipeline replication to": true,
	"failed to send snapshot to":              true,
	"failed to make requestVote RPC":          true, // raft.go, elections
}

// adjust returns the level a line is written at.
func adjust(level hclog.Level, msg string, args []any) hclog.Level {
	if level == hclog.Error && unreachablePeer[msg] && unreachable(errorArg(args)) {
		return hclog.Warn
	}
	return level
}

// errorArg returns the value of the "error" key, which is where Raft
// puts the cause.
func errorArg(args []any) error {
	for i := 0; i+1 < len(args); i += 2 {
		if k, _ := args[i].(string); k == "error" {
			err, _ := args[i+1].(error)
			return err
		}
	}
	return nil
}

// unreachable reports whether err says a connection to a peer could not
// be made or was lost: gRPC's Unavailable (refused, reset, closing) and
// Canceled (a connection torn down under the call), a deadline, or a
// stream that ended (EOF).
func unreachable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
		return true
	}
	if st, ok := status.FromError(err); ok {
		switch st.Code() {
		case codes.Unavailable, codes.Canceled, codes.DeadlineExceeded:
			return true
		}
	}
	return false
}
