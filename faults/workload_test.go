package faults

import (
	"context"
	"testing"
	"time"

	"github.com/skiffkv/skiff"
	"github.com/skiffkv/skiff/skifftest"
)

// A workload on a healthy cluster makes every kind of call, and most of
// them succeed.
func TestWorkloadRecordsEveryKind(t *testing.T) {
	c := skifftest.NewCluster(t, 3, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	rec := NewRecorder()
	Workload{Seed: 1}.Run(ctx, []skiff.KV{c.Client(nil)}, rec)
	ok := map[Kind]int{}
	for _, op := range rec.Ops() {
		if op.Return < op.Call {
			t.Fatalf("%+v returned before it was called", op)
		}
		if op.Outcome == OK {
			ok[op.Kind]++
		}
	}
	for _, k := range []Kind{Get, Put, CAS, Create, Delete, DeleteIf, List} {
		if ok[k] == 0 {
			t.Errorf("no successful %s in %d operations", k, len(rec.Ops()))
		}
	}
}
