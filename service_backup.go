package skiff

import (
	"fmt"
	"io"

	skiffpb "github.com/skiffkv/skiff/proto"
	"google.golang.org/grpc/metadata"
)

// Remote backup and restore stream skiff's snapshot format in chunks, so
// that neither side ever holds a message larger than a chunk, whatever
// the size of the state. A backup is served by any node (Node.Backup
// reads at a linearizable revision, asking the leader for a read index
// when it must). A restore is accepted by the leader only, and refused by
// any other node before a single chunk is read: forwarding would copy a
// backup of any size through a second node, and a client that knows
// whom to ask learns it from the refusal's leader hint at no cost.

const (
	// backupChunkBytes bounds the chunks a node sends and a client sends
	// for a restore: large enough that per-message overhead is small, far
	// below the message limit.
	backupChunkBytes = 1 << 20
	// restoreChunkLimit is the largest restore chunk a node accepts, so a
	// client may choose its own chunk size up to it.
	restoreChunkLimit = pageBytes
)

// Backup streams Node.Backup to the caller in chunks of at most
// backupChunkBytes.
func (s *service) Backup(_ *skiffpb.BackupRequest, stream skiffpb.Cluster_BackupServer) error {
	w := &chunkWriter{size: backupChunkBytes, send: func(b []byte) error {
		return stream.Send(&skiffpb.BackupChunk{Data: b})
	}}
	err := s.n.Backup(stream.Context(), w)
	if err == nil {
		err = w.flush()
	}
	if err != nil {
		return s.status(err)
	}
	return nil
}

// Restore serves a restore on the leader: it reads the whole backup from
// the stream, which Node.Restore checks completely before it changes
// anything, then installs it.
func (s *service) Restore(stream skiffpb.Cluster_RestoreServer) error {
	if !s.n.IsLeader() {
		return s.status(fmt.Errorf("%w: restore must run on the leader; %s does not lead", ErrNotLeader, s.n.id))
	}
	// The headers tell the client that this node took the restore, before
	// it sends anything (see Client.Restore).
	if err := stream.SendHeader(metadata.MD{}); err != nil {
		return err
	}
	r := &chunkReader{recv: func() ([]byte, error) {
		m, err := stream.Recv()
		if err != nil {
			return nil, err
		}
		if len(m.Data) > restoreChunkLimit {
			return nil, fmt.Errorf("%w: a restore chunk of %d bytes exceeds %d", ErrInvalidArgument, len(m.Data), restoreChunkLimit)
		}
		return m.Data, nil
	}}
	view, err := s.n.restore(stream.Context(), r)
	if err != nil {
		return s.status(err)
	}
	return stream.SendAndClose(&skiffpb.RestoreResponse{BackupRevision: view.Revision(), Keys: int64(view.Len())})
}

// chunkWriter gathers writes into chunks of size bytes and hands each
// full chunk to send; flush sends the rest. send may keep the slice it is
// given: every chunk is a new one.
type chunkWriter struct {
	size int
	send func([]byte) error
	buf  []byte
}

func (w *chunkWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if w.buf == nil {
			w.buf = make([]byte, 0, w.size)
		}
		k := copy(w.buf[len(w.buf):w.size], p)
		w.buf, p = w.buf[:len(w.buf)+k], p[k:]
		if len(w.buf) == w.size {
			if err := w.flush(); err != nil {
				return n - len(p), err
			}
		}
	}
	return n, nil
}

func (w *chunkWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	b := w.buf
	w.buf = nil
	return w.send(b)
}

// chunkReader reads the chunks recv returns, in order, until it returns
// io.EOF.
type chunkReader struct {
	recv func() ([]byte, error)
	cur  []byte
	err  error
}

func (r *chunkReader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		r.cur, r.err = r.recv()
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

var _ io.Reader = (*chunkReader)(nil)
