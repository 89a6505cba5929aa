package faults

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/skiffkv/skiff"
)

// Workload is a load of random operations on a small set of keys, the
// kind a linearizability checker can follow: few keys, so that operations
// meet; every written value unique, so that a read names the write it saw.
type Workload struct {
	Prefix    string        // the keys are Prefix/k0 ... Prefix/k(Keys-1); default "w"
	Keys      int           // default 4
	Clients   int           // concurrent callers; default 4
	Seed      int64         // the whole sequence of choices follows from it
	OpTimeout time.Duration // each call's deadline; default 3s
}

func (w Workload) withDefaults() Workload {
	if w.Prefix == "" {
		w.Prefix = "w"
	}
	if w.Keys <= 0 {
		w.Keys = 4
	}
	if w.Clients <= 0 {
		w.Clients = 4
	}
	if w.OpTimeout <= 0 {
		w.OpTimeout = 3 * time.Second
	}
	return w
}

// Run drives the workload until ctx ends and records every operation in
// rec. Client i calls kvs[i%len(kvs)]: one network client for all, or one
// node each. It returns once every client's last call has returned.
func (w Workload) Run(ctx context.Context, kvs []skiff.KV, rec *Recorder) {
	w = w.withDefaults()
	var wg sync.WaitGroup
	for c := 0; c < w.Clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := &client{w: w, id: c, kv: kvs[c%len(kvs)], rec: rec,
				rng: rand.New(rand.NewPCG(uint64(w.Seed), uint64(c))), seen: map[string]uint64{}}
			for ctx.Err() == nil {
				cl.step(ctx)
			}
		}()
	}
	wg.Wait()
}

// client is one caller of a workload.
type client struct {
	w    Workload
	id   int
	kv   skiff.KV
	rec  *Recorder
	rng  *rand.Rand
	seq  int
	seen map[string]uint64 // the last ModRevision this client saw per key
}

// step makes one random call and records it.
func (c *client) step(ctx context.Context) {
	key := fmt.Sprintf("%s/k%d", c.w.Prefix, c.rng.IntN(c.w.Keys))
	c.seq++
	value := fmt.Sprintf("c%d-%d", c.id, c.seq)
	op := Op{Client: c.id, Key: key}
	switch p := c.rng.IntN(100); {
	case p < 30:
		op.Kind = Get
	case p < 48:
		op.Kind, op.Value = Put, value
	case p < 63:
		op.Kind, op.Value, op.Rev = CAS, value, c.guessRev(key)
	case p < 73:
		op.Kind, op.Value = Create, value
	case p < 80:
		op.Kind = Delete
	case p < 87:
		op.Kind, op.Rev = DeleteIf, c.guessRev(key)
	default:
		op.Kind, op.Key = List, ""
	}
	cctx, cancel := context.WithTimeout(ctx, c.w.OpTimeout)
	defer cancel()
	op.Call = c.rec.Now()
	err := c.call(cctx, &op)
	op.Return = c.rec.Now()
	classify(&op, err)
	if op.Outcome == Unknown {
		op.Return = Never
	}
	if op.Outcome == Failed && !op.Mismatch && (op.Kind == Get || op.Kind == List) {
		return // a read that failed says nothing
	}
	c.rec.Add(op)
}

// guessRev returns a revision for a conditional write: usually the last
// one this client saw for key, so that some conditions hold.
func (c *client) guessRev(key string) uint64 {
	if rev, ok := c.seen[key]; ok && c.rng.IntN(4) != 0 {
		return rev
	}
	return uint64(1 + c.rng.IntN(50))
}

// call makes op's call and fills in its output.
func (c *client) call(ctx context.Context, op *Op) error {
	var err error
	switch op.Kind {
	case Get:
		var kv *skiff.KeyValue
		if kv, err = c.kv.Get(ctx, op.Key); err == nil {
			op.Got = entry(kv)
			c.seen[op.Key] = kv.ModRevision
		}
	case Put:
		op.OutRev, err = c.kv.Put(ctx, op.Key, []byte(op.Value))
	case Create:
		op.OutRev, err = c.kv.Create(ctx, op.Key, []byte(op.Value))
	case CAS:
		op.OutRev, err = c.kv.CompareAndSwap(ctx, op.Key, []byte(op.Value), op.Rev)
	case Delete:
		err = c.kv.Delete(ctx, op.Key)
	case DeleteIf:
		err = c.kv.DeleteIf(ctx, op.Key, op.Rev)
	case List:
		var res *skiff.ListResult
		if res, err = c.kv.List(ctx, c.w.Prefix); err == nil {
			for i := range res.KVs {
				op.Listed = append(op.Listed, entry(&res.KVs[i]))
			}
		}
	}
	if op.OutRev != 0 {
		c.seen[op.Key] = op.OutRev
	}
	return err
}

func entry(kv *skiff.KeyValue) Entry {
	return Entry{Key: kv.Key, Value: string(kv.Value), Create: kv.CreateRevision, Mod: kv.ModRevision, Version: kv.Version}
}
