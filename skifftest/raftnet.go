package skifftest

import (
	"fmt"
	"io"

	"github.com/hashicorp/raft"
)

// faultTransport is node from's Raft transport: the InmemTransport with
// every outgoing call passed through the fault network. A call is a
// request from→to and an answer to→from, and each direction meets its
// own faults, so a one-way cut lets requests arrive and change the peer's
// state while their answers are lost.
type faultTransport struct {
	*raft.InmemTransport
	c    *Cluster
	from int
	done chan struct{} // closed when the node's transport closes
}

var (
	_ raft.Transport   = (*faultTransport)(nil)
	_ raft.WithPreVote = (*faultTransport)(nil)
	_ raft.WithClose   = (*faultTransport)(nil)
)

// call runs one RPC to target through the network.
func (t *faultTransport) call(target raft.ServerAddress, rpc func() error) error {
	to := t.c.indexOf(string(target))
	if to < 0 {
		return rpc() // not a node of this cluster: let the transport fail it
	}
	net := t.c.net
	lost, delay := net.message(t.from, to)
	if !sleep(delay, t.done) {
		return fmt.Errorf("%w: transport closed", errLink)
	}
	if lost {
		return fmt.Errorf("%w: request %d→%d lost", errLink, t.from, to)
	}
	if err := rpc(); err != nil {
		return err
	}
	lost, delay = net.message(to, t.from)
	if !sleep(delay, t.done) {
		return fmt.Errorf("%w: transport closed", errLink)
	}
	if lost {
		return fmt.Errorf("%w: answer %d→%d lost", errLink, to, t.from)
	}
	return nil
}

func (t *faultTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	return t.call(target, func() error { return t.InmemTransport.AppendEntries(id, target, args, resp) })
}

func (t *faultTransport) RequestVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestVoteRequest, resp *raft.RequestVoteResponse) error {
	return t.call(target, func() error { return t.InmemTransport.RequestVote(id, target, args, resp) })
}

func (t *faultTransport) RequestPreVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	return t.call(target, func() error { return t.InmemTransport.RequestPreVote(id, target, args, resp) })
}

func (t *faultTransport) InstallSnapshot(id raft.ServerID, target raft.ServerAddress, args *raft.InstallSnapshotRequest, resp *raft.InstallSnapshotResponse, data io.Reader) error {
	return t.call(target, func() error { return t.InmemTransport.InstallSnapshot(id, target, args, resp, data) })
}

func (t *faultTransport) TimeoutNow(id raft.ServerID, target raft.ServerAddress, args *raft.TimeoutNowRequest, resp *raft.TimeoutNowResponse) error {
	return t.call(target, func() error { return t.InmemTransport.TimeoutNow(id, target, args, resp) })
}

// AppendEntriesPipeline offers a pipeline only over a healthy link; Raft
// then replicates with single calls, which meet the faults. A pipeline
// opened while the link was healthy stops at its first append after a
// fault appears (see faultPipeline).
func (t *faultTransport) AppendEntriesPipeline(id raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	to := t.c.indexOf(string(target))
	if to >= 0 && !t.c.net.healthy(t.from, to) {
		return nil, raft.ErrPipelineReplicationNotSupported
	}
	p, err := t.InmemTransport.AppendEntriesPipeline(id, target)
	if err != nil {
		return nil, err
	}
	return &faultPipeline{AppendPipeline: p, t: t, to: to}, nil
}

func (t *faultTransport) Close() error {
	t.c.mu.Lock()
	select {
	case <-t.done:
	default:
		close(t.done)
	}
	t.c.mu.Unlock()
	return t.InmemTransport.Close()
}

// faultPipeline fails appends once the link is no longer healthy, which
// makes Raft close it and go back to single calls.
type faultPipeline struct {
	raft.AppendPipeline
	t  *faultTransport
	to int
}

func (p *faultPipeline) AppendEntries(args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) (raft.AppendFuture, error) {
	if p.to >= 0 && !p.t.c.net.healthy(p.t.from, p.to) {
		return nil, fmt.Errorf("%w: pipeline %d→%d degraded", errLink, p.t.from, p.to)
	}
	return p.AppendPipeline.AppendEntries(args, resp)
}
