package skiff

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	raftpb "github.com/Jille/raft-grpc-transport/proto"
	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The Raft transport is Jille/raft-grpc-transport on the node's gRPC
// server. This file holds what skiff adds around it:
//
//   - Every request is validated before the transport decodes it, and
//     every answer before Raft reads it: the transport's decoding panics on
//     a missing header or an unknown entry type, and hashicorp/raft panics
//     on a configuration it cannot decode, both in goroutines no recover
//     can reach. One malformed message would stop the process.
//   - AppendEntries calls are split so that none exceeds appendBytes.
//   - AppendEntries calls wait for a peer that is down (awaitPeer).

// raftService is the transport's gRPC service name.
const raftService = "RaftTransport"

// errBadRaftMessage marks a transport message refused by validation.
var errBadRaftMessage = errors.New("malformed Raft message")

// validateRaftRequest checks a request to the Raft transport. first is
// false for the data-only messages that follow the first one of an
// InstallSnapshot stream.
func validateRaftRequest(m any, first bool) error {
	switch r := m.(type) {
	case *raftpb.AppendEntriesRequest:
		if r.RpcHeader == nil {
			return badRaft("AppendEntries without a header")
		}
		return validateEntries(r)
	case *raftpb.RequestVoteRequest:
		if r.RpcHeader == nil {
			return badRaft("RequestVote without a header")
		}
	case *raftpb.RequestPreVoteRequest:
		if r.RpcHeader == nil {
			return badRaft("RequestPreVote without a header")
		}
	case *raftpb.TimeoutNowRequest:
		if r.RpcHeader == nil {
			return badRaft("TimeoutNow without a header")
		}
	case *raftpb.InstallSnapshotRequest:
		if !first {
			return nil
		}
		if r.RpcHeader == nil {
			return badRaft("InstallSnapshot without a header")
		}
		if r.SnapshotVersion > 0 {
			return checkConfiguration(r.Configuration)
		}
	}
	return nil
}

// validateEntries checks what hashicorp/raft assumes of an append: known
// entry types, decodable configurations, consecutive indexes following
// the previous entry, and no entry from a later term than the request's.
func validateEntries(r *raftpb.AppendEntriesRequest) error {
	for i, e := range r.Entries {
		if _, ok := raftpb.Log_LogType_name[int32(e.Type)]; !ok {
			return badRaft(fmt.Sprintf("entry %d has unknown type %d", e.Index, e.Type))
		}
		if e.Index != r.PrevLogEntry+1+uint64(i) {
			return badRaft(fmt.Sprintf("entry %d does not follow %d", e.Index, r.PrevLogEntry+uint64(i)))
		}
		if e.Term > r.Term {
			return badRaft(fmt.Sprintf("entry %d has term %d, after the request's %d", e.Index, e.Term, r.Term))
		}
		if e.Type == raftpb.Log_LOG_CONFIGURATION {
			if err := checkConfiguration(e.Data); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkConfiguration reports whether raft.DecodeConfiguration, which
// panics on bad input, can decode b.
func checkConfiguration(b []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = badRaft(fmt.Sprintf("undecodable configuration: %v", r))
		}
	}()
	raft.DecodeConfiguration(b)
	return nil
}

func badRaft(msg string) error {
	return fmt.Errorf("%w: %w: %s", ErrInvalidArgument, errBadRaftMessage, msg)
}

// raftReply is what every answer of the transport has: the header its
// decoding dereferences.
type raftReply interface {
	GetRpcHeader() *raftpb.RPCHeader
}

func validateRaftReply(m any) error {
	if r, ok := m.(raftReply); ok && r.GetRpcHeader() == nil {
		return status.Error(codes.Internal, "skiff: Raft answer without a header")
	}
	return nil
}

// checkRaftReplies validates the answers of unary transport calls.
func checkRaftReplies(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoke grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if err := invoke(ctx, method, req, reply, cc, opts...); err != nil {
		return err
	}
	return validateRaftReply(reply)
}

// checkRaftStreamReplies validates the answers on transport streams.
func checkRaftStreamReplies(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	cs, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		return nil, err
	}
	return checkedClientStream{cs}, nil
}

type checkedClientStream struct{ grpc.ClientStream }

func (s checkedClientStream) RecvMsg(m any) error {
	if err := s.ClientStream.RecvMsg(m); err != nil {
		return err
	}
	return validateRaftReply(m)
}

// appendWait bounds how long a Raft AppendEntries call waits for the
// peer's connection; see awaitPeer.
const appendWait = 10 * time.Second

// awaitPeer makes the Raft transport's AppendEntries calls (heartbeats
// included) wait, up to appendWait, for a peer that is down to come back,
// instead of failing at once. After each failed call hashicorp/raft backs
// off before it tries that peer again, doubling the pause up to 10 s; with
// calls that fail at once, a follower down for 15 s was retried only
// about 5 s after it was back. A waiting call goes out as soon as the
// connection is ready again, so a restarted member is caught up within
// gRPC's reconnect delay (at most 1 s). The wait also bounds a call to a
// peer that stopped answering, which had no deadline at all. Votes still
// fail fast: an election must not wait for a dead peer.
func (n *Node) awaitPeer(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoke grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if method != "/"+raftService+"/AppendEntries" {
		return invoke(ctx, method, req, reply, cc, opts...)
	}
	ctx, cancel := context.WithTimeout(ctx, appendWait)
	defer cancel()
	defer context.AfterFunc(n.ctx, cancel)()                       // Close does not wait for it
	defer context.AfterFunc(n.peerWaits.of(cc.Target()), cancel)() // nor does an address change
	return invoke(ctx, method, req, reply, cc, append(opts, grpc.WaitForReady(true))...)
}

// peerWaits lets the calls waiting for a peer's address be ended when
// that address is no longer a member's (see dropPeer).
type peerWaits struct {
	mu  sync.Mutex
	ctx map[string]context.Context
	end map[string]context.CancelFunc
}

// of returns a context that ends when target is dropped.
func (w *peerWaits) of(target string) context.Context {
	w.mu.Lock()
	defer w.mu.Unlock()
	if ctx, ok := w.ctx[target]; ok {
		return ctx
	}
	if w.ctx == nil {
		w.ctx, w.end = map[string]context.Context{}, map[string]context.CancelFunc{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	w.ctx[target], w.end[target] = ctx, cancel
	return ctx
}

// dropPeer ends the Raft calls waiting for addr to come back: a member
// that moved to another address is replicated to there at once, not
// after appendWait.
func (n *Node) dropPeer(addr string) {
	w := &n.peerWaits
	w.mu.Lock()
	defer w.mu.Unlock()
	for target, cancel := range w.end {
		if target == addr || strings.HasSuffix(target, "/"+addr) {
			cancel()
			delete(w.ctx, target)
			delete(w.end, target)
		}
	}
}

// raftTransportOptions are the dial options of the Raft transport's own
// connections: a peer's, plus answer validation and awaitPeer.
func (n *Node) raftTransportOptions() []grpc.DialOption {
	return append(peerDialOptions(n.cfg),
		grpc.WithChainUnaryInterceptor(checkRaftReplies, n.awaitPeer),
		grpc.WithChainStreamInterceptor(checkRaftStreamReplies))
}

// grpcTransport is what boundedTransport needs of the transport it wraps.
type grpcTransport interface {
	raft.Transport
	raft.WithPreVote
	raft.WithClose
}

// boundedTransport splits an AppendEntries call whose entries exceed
// appendBytes into consecutive calls, each starting where the previous
// one ended. hashicorp/raft packs up to MaxAppendEntries entries into one
// call whatever their size; 80 one-megabyte writes made an 80 MB message
// that the followers refused, and the leader retried it for ever.
//
// The split is invisible to Raft: the follower receives what it would
// receive from a leader with a smaller MaxAppendEntries, and Raft sees one
// answer, the first failing part's or the last part's.
type boundedTransport struct {
	grpcTransport
	budget int
}

var _ grpcTransport = (*boundedTransport)(nil)

func (t *boundedTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	parts := splitEntries(args.Entries, t.budget)
	if len(parts) == 1 {
		return t.grpcTransport.AppendEntries(id, target, args, resp)
	}
	for i := range parts {
		if err := t.grpcTransport.AppendEntries(id, target, appendPart(args, parts, i), resp); err != nil {
			return err
		}
		if !resp.Success || resp.Term > args.Term {
			return nil
		}
	}
	return nil
}

func (t *boundedTransport) AppendEntriesPipeline(id raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	inner, err := t.grpcTransport.AppendEntriesPipeline(id, target)
	if err != nil {
		return nil, err
	}
	p := &boundedPipeline{
		inner:  inner,
		budget: t.budget,
		parts:  make(chan pipelinePart, 64),
		done:   make(chan raft.AppendFuture, 64),
		stop:   make(chan struct{}),
	}
	go p.collect()
	return p, nil
}

// logEntrySize is what an entry adds to an append message, near enough.
func logEntrySize(l *raft.Log) int { return len(l.Data) + len(l.Extensions) + entryOverhead }

// splitEntries cuts entries into runs of at most budget bytes; a run
// holds at least one entry. No entries give one empty run (a heartbeat).
func splitEntries(entries []*raft.Log, budget int) [][]*raft.Log {
	var parts [][]*raft.Log
	start, size := 0, 0
	for i, l := range entries {
		s := logEntrySize(l)
		if i > start && size+s > budget {
			parts = append(parts, entries[start:i])
			start, size = i, 0
		}
		size += s
	}
	return append(parts, entries[start:])
}

// appendPart returns the request carrying parts[i]: args itself for a
// single part, else a copy that follows the previous part's last entry.
func appendPart(args *raft.AppendEntriesRequest, parts [][]*raft.Log, i int) *raft.AppendEntriesRequest {
	if len(parts) == 1 {
		return args
	}
	req := *args
	req.Entries = parts[i]
	if i > 0 {
		prev := parts[i-1][len(parts[i-1])-1]
		req.PrevLogEntry, req.PrevLogTerm = prev.Index, prev.Term
	}
	return &req
}

// boundedPipeline splits pipelined appends the same way. Each part goes
// through the inner pipeline; collect matches the inner answers, which
// arrive in sending order, to the parts and hands Raft one future per
// append once its last part is answered.
type boundedPipeline struct {
	inner     raft.AppendPipeline
	budget    int
	parts     chan pipelinePart // one per part sent, in sending order
	done      chan raft.AppendFuture
	stop      chan struct{}
	closeOnce sync.Once
}

type pipelinePart struct {
	f    *splitFuture
	last bool
}

var errPipelineClosed = errors.New("append pipeline closed")

func (p *boundedPipeline) AppendEntries(args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) (raft.AppendFuture, error) {
	parts := splitEntries(args.Entries, p.budget)
	f := &splitFuture{start: time.Now(), req: args, done: make(chan struct{})}
	for i := range parts {
		// The part is queued before it is sent, so collect always knows
		// whose answer comes next.
		select {
		case p.parts <- pipelinePart{f: f, last: i == len(parts)-1}:
		case <-p.stop:
			return nil, errPipelineClosed
		}
		if _, err := p.inner.AppendEntries(appendPart(args, parts, i), new(raft.AppendEntriesResponse)); err != nil {
			return nil, err
		}
	}
	return f, nil
}

func (p *boundedPipeline) collect() {
	for {
		var part pipelinePart
		select {
		case part = <-p.parts:
		case <-p.stop:
			return
		}
		var answer raft.AppendFuture
		select {
		case answer = <-p.inner.Consumer():
		case <-p.stop:
			return
		}
		part.f.add(answer)
		if !part.last {
			continue
		}
		close(part.f.done)
		select {
		case p.done <- part.f:
		case <-p.stop:
			return
		}
	}
}

func (p *boundedPipeline) Consumer() <-chan raft.AppendFuture { return p.done }

func (p *boundedPipeline) Close() error {
	p.closeOnce.Do(func() { close(p.stop) })
	return p.inner.Close()
}

// splitFuture is the answer to an append sent in parts.
type splitFuture struct {
	start  time.Time
	req    *raft.AppendEntriesRequest
	resp   raft.AppendEntriesResponse
	err    error
	failed bool // a part failed; the answers of later parts are ignored
	done   chan struct{}
}

// add records one part's answer; collect calls it in part order.
func (f *splitFuture) add(answer raft.AppendFuture) {
	if f.failed {
		return
	}
	if err := answer.Error(); err != nil {
		f.err, f.failed = err, true
		return
	}
	f.resp = *answer.Response()
	f.failed = !f.resp.Success || f.resp.Term > f.req.Term
}

func (f *splitFuture) Error() error {
	<-f.done
	return f.err
}

func (f *splitFuture) Start() time.Time                      { return f.start }
func (f *splitFuture) Request() *raft.AppendEntriesRequest   { return f.req }
func (f *splitFuture) Response() *raft.AppendEntriesResponse { return &f.resp }
