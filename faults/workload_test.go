package faults

import (
	"context"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/skiffkv/skiff"
	"github.com/skiffkv/skiff/skifftest"
)

// A workload on a healthy cluster makes every kind of call, and most of
// them succeed.
func TestWorkloadRecordsEveryKind(t *testing.T) {
	c := skifftest.NewCluster(t, 3, nil)
	rec := NewRecorder()
	kinds := []Kind{Get, Put, CAS, Create, Delete, DeleteIf, List}
	runUntil(30*time.Second, Workload{Seed: 1}, []skiff.KV{c.Client(nil)}, rec, func(ops []Op) bool {
		ok := map[Kind]bool{}
		for _, op := range ops {
			ok[op.Kind] = ok[op.Kind] || op.Outcome == OK
		}
		return len(ok) == len(kinds) && !slices.Contains(slices.Collect(maps.Values(ok)), false)
	})
	ok := map[Kind]int{}
	for _, op := range rec.Ops() {
		if op.Return < op.Call {
			t.Fatalf("%+v returned before it was called", op)
		}
		if op.Outcome == OK {
			ok[op.Kind]++
		}
	}
	for _, k := range kinds {
		if ok[k] == 0 {
			t.Errorf("no successful %s in %d operations", k, len(rec.Ops()))
		}
	}
}

// runUntil runs w until done says the operations recorded so far are
// enough (checked every 50 ms) or d passes: a loaded machine makes fewer
// calls in a given time, not different ones.
func runUntil(d time.Duration, w Workload, kvs []skiff.KV, rec *Recorder, done func([]Op) bool) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	go func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if done(rec.Ops()) {
					cancel()
					return
				}
			}
		}
	}()
	w.Run(ctx, kvs, rec)
}
