package skiff

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// healthService answers the standard gRPC health check
// (grpc.health.v1.Health), for the whole node (service "") and for the
// KV service: SERVING while the node knows a leader and has applied what
// it knows to be committed, give or take healthLag entries; NOT_SERVING
// otherwise. Orchestrators and load balancers use it; skiff's own callers
// use it to tell a node that is slow from one that stopped answering
// (watchNode). Anyone may call it: it says nothing about the data.
type healthService struct {
	healthpb.UnimplementedHealthServer
	n *Node
}

// healthLag is how far the applied index may trail the commit index on a
// node that reports itself serving.
const healthLag = 1024

func (h healthService) Check(_ context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	if req.Service != "" && req.Service != "skiff.v1.KV" {
		return nil, status.Errorf(codes.NotFound, "unknown service %q", req.Service)
	}
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if ready, _ := h.n.readiness(); ready {
		st = healthpb.HealthCheckResponse_SERVING
	}
	return &healthpb.HealthCheckResponse{Status: st}, nil
}

// readiness is the one rule for whether a node is ready to serve, for
// the gRPC health service, /readyz and skiff_ready: it runs, knows a
// leader, and has applied what it knows to be committed, give or take
// healthLag entries. why says what is missing, or "ready".
func (n *Node) readiness() (ready bool, why string) {
	if n.isClosed() {
		if err := n.Err(); err != nil {
			return false, "the node stopped: " + err.Error()
		}
		return false, "the node is closed"
	}
	if id, _ := n.Leader(); id == "" {
		return false, "no leader known"
	}
	commit, applied := n.raft.CommitIndex(), n.fsm.appliedIndex()
	if commit > applied+healthLag {
		return false, fmt.Sprintf("applied index %d trails the commit index %d by more than %d", applied, commit, healthLag)
	}
	return true, "ready"
}

// errUnresponsive is the cause of an attempt ended because its node
// stopped answering.
var errUnresponsive = errors.New("the node stopped answering")

// watchNode returns the context of one attempt on conn: it ends, with
// cause errUnresponsive, when the node stops answering. Once the attempt
// has run for every, the node gets a health check on the same connection
// and twice every to answer it, and so on while the attempt runs. Any
// answer will do, an error included: a frozen process, a host that
// vanished or one cut off from the caller gives none. So an attempt lasts
// as long as its node is there, however long a busy but healthy cluster
// takes to commit, and no longer than about three times every once it is
// gone. (A node starved of CPU still answers a health check within two
// election timeouts; one that cannot is no leader for long anyway.)
func watchNode(ctx context.Context, conn *grpc.ClientConn, every time.Duration) (context.Context, context.CancelFunc) {
	actx, cancel := context.WithCancelCause(ctx)
	w := &nodeWatch{ctx: actx, cancel: cancel, conn: conn, every: every}
	w.mu.Lock()
	w.timer = time.AfterFunc(every, w.probe)
	w.mu.Unlock()
	return actx, w.stop
}

type nodeWatch struct {
	ctx    context.Context
	cancel context.CancelCauseFunc
	conn   *grpc.ClientConn
	every  time.Duration

	mu    sync.Mutex
	timer *time.Timer
	done  bool
}

func (w *nodeWatch) probe() {
	pctx, cancel := context.WithTimeout(w.ctx, 2*w.every)
	_, err := healthpb.NewHealthClient(w.conn).Check(pctx, &healthpb.HealthCheckRequest{})
	cancel()
	if w.ctx.Err() != nil {
		return
	}
	if code := status.Code(err); code == codes.DeadlineExceeded || code == codes.Unavailable {
		w.cancel(errUnresponsive)
		return
	}
	w.mu.Lock()
	if !w.done {
		w.timer = time.AfterFunc(w.every, w.probe)
	}
	w.mu.Unlock()
}

func (w *nodeWatch) stop() {
	w.mu.Lock()
	w.done = true
	w.timer.Stop()
	w.mu.Unlock()
	w.cancel(nil)
}

// unresponsive reports whether ctx, from watchNode, ended because its
// node stopped answering.
func unresponsive(ctx context.Context) bool { return errors.Is(context.Cause(ctx), errUnresponsive) }
