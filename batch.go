package skiff

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"

	skiffpb "github.com/skiffkv/skiff/proto"
	"github.com/skiffkv/skiff/store"
)

// maxBatchOps bounds the operations in one Batch call.
const maxBatchOps = 1024

// errNotRun is the result of a Get that a batch did not run because the
// answer had reached pageBytes: a small request must not make a node
// build an answer as large as the values it names (1024 Gets of 1 MiB
// values would be 1 GiB). Nothing was read for the Get, so it can be sent
// again; the Client does so in a later batch, and its callers never see
// this error. It travels as the reason NOT_RUN.
var errNotRun = errors.New("skiff: not run: the batch's answer reached its size limit; send the operation again")

// Batch serves many independent operations in one call. Writes run
// concurrently, so Raft can put them in one log append; linearizable reads
// share one read index, stale reads one view. Each operation gets its own
// result or error, exactly as if it had been called alone.
func (s *service) Batch(ctx context.Context, req *skiffpb.BatchRequest) (*skiffpb.BatchResponse, error) {
	if len(req.Ops) > maxBatchOps {
		return nil, s.status(fmt.Errorf("%w: %d operations in a batch, limit %d", ErrInvalidArgument, len(req.Ops), maxBatchOps))
	}
	results := make([]*skiffpb.OpResult, len(req.Ops))
	var wg sync.WaitGroup
	var linear, stale []int
	// Writes run concurrently so that Raft appends them together; a lone
	// write runs on this goroutine. A panic on another goroutine would
	// escape the handler's recovery, so each recovers its own.
	spawn := func(_ int, f func()) { f() }
	if len(req.Ops) > 1 {
		spawn = func(i int, f func()) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() {
					if p := recover(); p != nil {
						s.n.log.Error("recovered from a panic while serving a batch", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
						results[i] = s.opResult(nil, errors.New("skiff: internal error (the node logged it)"))
					}
				}()
				f()
			}()
		}
	}
	for i, op := range req.Ops {
		switch o := op.Op.(type) {
		case *skiffpb.Op_Put:
			spawn(i, func() {
				resp, err := s.put(ctx, o.Put)
				results[i] = s.opResult(&skiffpb.OpResult{Result: &skiffpb.OpResult_Put{Put: resp}}, err)
			})
		case *skiffpb.Op_Delete:
			spawn(i, func() {
				resp, err := s.delete(ctx, o.Delete)
				results[i] = s.opResult(&skiffpb.OpResult{Result: &skiffpb.OpResult_Delete{Delete: resp}}, err)
			})
		case *skiffpb.Op_Get:
			if o.Get.GetOptions().GetStale() {
				stale = append(stale, i)
			} else {
				linear = append(linear, i)
			}
		default:
			results[i] = s.opResult(nil, fmt.Errorf("%w: empty operation", ErrInvalidArgument))
		}
	}
	used := 0 // bytes of values and keys in the answer so far
	s.batchGets(ctx, req.Ops, stale, true, results, &used)
	s.batchGets(ctx, req.Ops, linear, false, results, &used)
	wg.Wait()
	return &skiffpb.BatchResponse{Results: results, Leader: s.leaderAddr()}, nil
}

// batchGets answers the Gets at idx from one view, until the answer
// holds pageBytes (*used counts it across calls); the Get that reaches
// the budget is answered, so the first always is. The rest are errNotRun.
func (s *service) batchGets(ctx context.Context, ops []*skiffpb.Op, idx []int, stale bool, results []*skiffpb.OpResult, used *int) {
	if len(idx) == 0 {
		return
	}
	var view *store.View
	var err error
	if *used < pageBytes {
		view, err = s.n.view(ctx, stale)
	}
	for _, i := range idx {
		if *used >= pageBytes {
			results[i] = s.opResult(nil, errNotRun)
			continue
		}
		if err != nil {
			s.n.meter().read(readGet, &err)
			results[i] = s.opResult(nil, err)
			continue
		}
		resp, gerr := s.n.getFrom(view, ops[i].GetGet().GetKey())
		s.n.meter().read(readGet, &gerr)
		results[i] = s.opResult(&skiffpb.OpResult{Result: &skiffpb.OpResult_Get{Get: resp}}, gerr)
		*used += len(resp.GetKv().GetKey()) + len(resp.GetKv().GetValue()) + entryOverhead
	}
}

func (s *service) opResult(ok *skiffpb.OpResult, err error) *skiffpb.OpResult {
	if err != nil {
		return &skiffpb.OpResult{Result: &skiffpb.OpResult_Error{Error: toOpError(err, s.leaderAddr())}}
	}
	return ok
}

// getFrom reads one key from view for a Get response.
func (n *Node) getFrom(view *store.View, key string) (*skiffpb.GetResponse, error) {
	if err := validateKey(key, n.cfg.MaxKeySize); err != nil {
		return nil, err
	}
	e, ok := view.Get(key)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, key)
	}
	return &skiffpb.GetResponse{Kv: entryToPB(e), Revision: e.ModRevision}, nil
}
