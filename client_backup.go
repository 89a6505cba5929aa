package skiff

import (
	"context"
	"errors"
	"fmt"
	"io"

	skiffpb "github.com/skiffkv/skiff/proto"
	"google.golang.org/grpc"
)

// Backup writes a consistent copy of the cluster's state to w, as
// Node.Backup does: it includes every write acknowledged before Backup was
// called. It is streamed from one node, the leader when the client knows
// it. A node that fails before sending anything is replaced by another;
// once bytes have reached w, a failure ends the call, since w then holds
// part of a backup (which Restore refuses as ErrCorrupt).
//
// The call takes its deadline from ctx, or the Client's call timeout when
// ctx has none; give a large backup a deadline of its own.
func (c *Client) Backup(ctx context.Context, w io.Writer) error {
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	var wrote bool // bytes have reached w: another attempt would add a second backup to the first's part
	return c.attempts(ctx, true, false, func(ctx context.Context, addr string, cc *grpc.ClientConn) (bool, error) {
		if wrote {
			return false, fmt.Errorf("%w: backup: the node stopped answering after part of the backup was written", ErrUnavailable)
		}
		err := backupFrom(ctx, cc, w, &wrote)
		if err == nil {
			return true, nil
		}
		again := !wrote && ctx.Err() == nil && (notApplied(err) || errors.Is(err, ErrTimeout) || errors.Is(err, ErrClosed))
		return again, err
	})
}

// backupFrom copies one node's backup stream to w; wrote is set once
// anything has been written to w.
func backupFrom(ctx context.Context, cc *grpc.ClientConn, w io.Writer, wrote *bool) error {
	st, err := skiffpb.NewClusterClient(cc).Backup(ctx, &skiffpb.BackupRequest{})
	if err != nil {
		return fromStatus(err)
	}
	for {
		chunk, err := st.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fromStatus(err)
		}
		*wrote = true
		if _, err := w.Write(chunk.Data); err != nil {
			return fmt.Errorf("backup: write: %w", err)
		}
	}
}

// Restore replaces the state of the whole cluster with a backup read from
// r, as Node.Restore does on the leader. Only the leader accepts it: a
// node that does not lead refuses before anything is read from r, naming
// the leader, and the client moves on. The leader checks the whole backup
// before it changes anything; a damaged one is refused with ErrCorrupt.
//
// If leadership moves while the backup is being sent, nothing changed;
// when r is an io.Seeker that can seek (an *os.File on a regular file),
// the backup is sent again to the new leader from where r was when
// Restore was called, and otherwise Restore fails with ErrNotLeader. A
// failure after the whole backup was sent, without an answer from the
// leader, is ErrIndeterminate: the restore may have taken place
// (restoring the same backup again is harmless).
//
// The call takes its deadline from ctx, or the Client's call timeout when
// ctx has none.
func (c *Client) Restore(ctx context.Context, r io.Reader) error {
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	rewind := rewinder(r)
	var read bool // r has been read from
	// An attempt may take the whole deadline (as a membership change may):
	// cutting off a leader that is still installing the backup would make
	// the outcome unknown.
	return c.attempts(ctx, true, true, func(ctx context.Context, addr string, cc *grpc.ClientConn) (bool, error) {
		if read { // only retried when rewind is set
			if err := rewind(); err != nil {
				return false, fmt.Errorf("restore: rewind the backup: %w", err)
			}
		}
		sent, err := restoreTo(ctx, cc, r)
		read = read || sent
		if err == nil {
			return true, nil
		}
		return notApplied(err) && ctx.Err() == nil && (!sent || rewind != nil), err
	})
}

// restoreTo sends the backup in r to one node. sent reports that r was
// read from.
func restoreTo(ctx context.Context, cc *grpc.ClientConn, r io.Reader) (sent bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the stream on every early return: the node then applies nothing
	st, err := skiffpb.NewClusterClient(cc).Restore(ctx)
	if err != nil {
		return false, fromStatus(err)
	}
	// The leader sends headers once it has taken the restore; any other
	// node (or a refusal of the caller) ends the call without them.
	if md, err := st.Header(); err != nil || md == nil {
		_, err = st.CloseAndRecv()
		if err == nil {
			err = fmt.Errorf("%w: the node ended the restore before it began", ErrUnavailable)
		}
		return false, fromStatus(err)
	}
	for {
		// A new buffer each time: gRPC may still hold a sent message.
		buf := make([]byte, backupChunkBytes)
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			sent = true
			if err := st.Send(&skiffpb.RestoreChunk{Data: buf[:n]}); err != nil {
				// The stream ended before its end was sent, so nothing was
				// applied; the node's answer says why.
				_, err = st.CloseAndRecv()
				return true, fromStatus(err)
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return sent, fmt.Errorf("restore: read the backup: %w", rerr)
		}
	}
	if _, err := st.CloseAndRecv(); err != nil {
		return true, sentError(ctx, fromStatus(err))
	}
	return true, nil
}

// rewinder returns a function that moves r back to where it is now, or nil
// when r cannot seek.
func rewinder(r io.Reader) func() error {
	s, ok := r.(io.Seeker)
	if !ok {
		return nil
	}
	start, err := s.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil // a pipe is an *os.File too
	}
	return func() error {
		_, err := s.Seek(start, io.SeekStart)
		return err
	}
}
