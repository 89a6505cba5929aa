package faults

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/skiffkv/skiff"
)

var (
	// ErrNotLinearizable: the history has no linearization under the
	// model; the error names the HTML file that shows the longest
	// linearizable prefixes.
	ErrNotLinearizable = errors.New("faults: history is not linearizable")
	// ErrCheckTimeout: the checker gave up before deciding.
	ErrCheckTimeout = errors.New("faults: linearizability check timed out")
)

// CheckOptions tunes CheckLinearizable.
type CheckOptions struct {
	// Dir receives the visualization of a violation (default os.TempDir()).
	Dir string
	// Name starts the visualization's file name (default "history").
	Name string
	// Timeout bounds the search (default 2 minutes).
	Timeout time.Duration
}

// CheckLinearizable checks ops against the model of skiff's KV. It
// returns nil when some linearization explains every operation, an error
// wrapping ErrNotLinearizable naming an HTML visualization when none does,
// and ErrCheckTimeout when the search ran out of time.
//
// Writes that failed for a reason other than their condition are left
// out: they must have changed nothing, and if one did, a later read sees a
// value the model never wrote and the history fails.
func CheckLinearizable(ops []Op, o CheckOptions) error {
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Minute
	}
	model, hist, err := compile(ops)
	if err != nil {
		return err
	}
	switch porcupine.CheckOperationsTimeout(model, hist, o.Timeout) {
	case porcupine.Ok:
		return nil
	case porcupine.Unknown:
		return fmt.Errorf("%w after %v (%d operations)", ErrCheckTimeout, o.Timeout, len(hist))
	}
	// Search again, recording the partial linearizations to show them.
	_, info := porcupine.CheckOperationsVerbose(model, hist, o.Timeout)
	dir, name := o.Dir, o.Name
	if dir == "" {
		dir = os.TempDir()
	}
	if name == "" {
		name = "history"
	}
	f, err := os.CreateTemp(dir, name+"-*.html")
	if err != nil {
		return fmt.Errorf("%w (visualization not written: %w)", ErrNotLinearizable, err)
	}
	defer f.Close()
	if err := porcupine.Visualize(model, info, f); err != nil {
		return fmt.Errorf("%w (visualization not written: %w)", ErrNotLinearizable, err)
	}
	path, _ := filepath.Abs(f.Name())
	return fmt.Errorf("%w: see %s", ErrNotLinearizable, path)
}

// compile turns ops into porcupine's history over the model.
func compile(ops []Op) (porcupine.Model, []porcupine.Operation, error) {
	d, keyIdx, valIdx := intern(ops)
	if len(d.keys) > maxKeys {
		return porcupine.Model{}, nil, fmt.Errorf("faults: the history touches %d keys, the checker handles %d", len(d.keys), maxKeys)
	}
	entryState := func(e Entry) keyState {
		return keyState{value: valIdx[e.Value], version: e.Version, create: rev{v: e.Create}, mod: rev{v: e.Mod}}
	}
	var hist []porcupine.Operation
	for i := range ops {
		o := &ops[i]
		if o.Outcome == Failed && !o.Mismatch {
			continue
		}
		c := &cop{op: o, kind: o.Kind, key: keyIdx[o.Key], rev: o.Rev, out: o.Outcome, mm: o.Mismatch,
			outRev: o.OutRev, nf: o.NotFound, id: uint32(i + 1)}
		if o.Value != "" {
			c.value = valIdx[o.Value]
		}
		if o.Kind == Get && !o.NotFound {
			c.got = entryState(o.Got)
		}
		if o.Kind == List {
			c.listed = make([]keyState, len(d.keys))
			for _, e := range o.Listed {
				c.listed[keyIdx[e.Key]] = entryState(e)
			}
		}
		hist = append(hist, porcupine.Operation{ClientId: o.Client, Input: c, Call: o.Call, Return: o.Return})
	}
	model := porcupine.Model{
		Init: func() any { return state{} },
		Step: func(s, in, _ any) (bool, any) { return step(s.(state), in.(*cop)) },
		Equal: func(a, b any) bool {
			return a.(state) == b.(state)
		},
		Hash:              func(s any) uint64 { return hash(s.(state)) },
		DescribeOperation: func(in, _ any) string { return d.op(in.(*cop)) },
		DescribeState:     func(s any) string { return d.state(s.(state)) },
	}
	return model, hist, nil
}

// intern numbers the keys (in order) and the values (from 1) of a
// history, counting those that reads report as well as those written.
func intern(ops []Op) (describer, map[string]int, map[string]uint32) {
	keySet := map[string]bool{}
	valIdx := map[string]uint32{}
	d := describer{values: []string{""}}
	addVal := func(v string) {
		if _, ok := valIdx[v]; !ok {
			valIdx[v] = uint32(len(d.values))
			d.values = append(d.values, v)
		}
	}
	for _, o := range ops {
		if o.Kind != List {
			keySet[o.Key] = true
		}
		if o.Value != "" {
			addVal(o.Value)
		}
		if o.Kind == Get && o.Outcome == OK && !o.NotFound {
			addVal(o.Got.Value)
		}
		for _, e := range o.Listed {
			keySet[e.Key] = true
			addVal(e.Value)
		}
	}
	for k := range keySet {
		d.keys = append(d.keys, k)
	}
	sort.Strings(d.keys)
	keyIdx := map[string]int{}
	for i, k := range d.keys {
		keyIdx[k] = i
	}
	return d, keyIdx, valIdx
}

// LostWrites returns the acknowledged writes that no read ever saw while a
// read of the same key that started after the write had returned saw the
// key at an older revision: writes the cluster acknowledged and then
// forgot.
func LostWrites(ops []Op) []Op {
	seen := map[string]bool{}
	for _, o := range ops {
		if o.Kind == Get && o.Outcome == OK && !o.NotFound {
			seen[o.Got.Value] = true
		}
		for _, e := range o.Listed {
			seen[e.Value] = true
		}
	}
	var lost []Op
	for _, w := range ops {
		if w.Outcome != OK || w.OutRev == 0 || seen[w.Value] {
			continue
		}
		for _, r := range ops {
			if r.Call > w.Return && r.Outcome == OK && olderRead(r, w.Key, w.OutRev) {
				lost = append(lost, w)
				break
			}
		}
	}
	return lost
}

// olderRead reports whether read r saw key at a revision below rev.
func olderRead(r Op, key string, rev uint64) bool {
	if r.Kind == Get && r.Key == key && !r.NotFound {
		return r.Got.Mod < rev
	}
	for _, e := range r.Listed {
		if e.Key == key {
			return e.Mod < rev
		}
	}
	return false
}

// HealedKey is the key CheckHealed writes, outside any workload's prefix.
const HealedKey = "healed"

// HealedWriteWithin is how soon a healed cluster must accept a write.
const HealedWriteWithin = 10 * time.Second

// CheckHealed checks a cluster whose faults have been healed and whose
// workload has stopped: a write through some node succeeds within
// HealedWriteWithin, and then every node reaches the same applied index
// with the same state (a stale List of the whole keyspace), within
// converge. nodes are the cluster's current members, all running. It
// returns the revision of the write.
func CheckHealed(ctx context.Context, nodes []*skiff.Node, converge time.Duration) (uint64, error) {
	rev, err := healedWrite(ctx, nodes)
	if err != nil {
		return 0, err
	}
	deadline := time.Now().Add(converge)
	for {
		err := sameState(ctx, nodes, rev)
		if err == nil || time.Now().After(deadline) {
			return rev, err
		}
		select {
		case <-ctx.Done():
			return rev, err
		case <-time.After(20 * time.Millisecond): // polling: nothing to wait on across nodes
		}
	}
}

// healedWrite writes HealedKey, trying the nodes in turn, and
// returns its revision.
func healedWrite(ctx context.Context, nodes []*skiff.Node) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, HealedWriteWithin)
	defer cancel()
	var last error
	for i := 0; ctx.Err() == nil; i++ {
		actx, acancel := context.WithTimeout(ctx, 2*time.Second)
		rev, err := nodes[i%len(nodes)].Put(actx, HealedKey, []byte(fmt.Sprint(i)))
		acancel()
		if err == nil {
			return rev, nil
		}
		last = err
	}
	return 0, fmt.Errorf("no write succeeded within %v of healing: %w", HealedWriteWithin, last)
}

// sameState compares the nodes' applied indexes (at least rev) and stale
// listings of the whole keyspace.
func sameState(ctx context.Context, nodes []*skiff.Node, rev uint64) error {
	var first []skiff.KeyValue
	var firstIdx uint64
	for i, n := range nodes {
		idx := n.Status().AppliedIndex
		if idx < rev {
			return fmt.Errorf("%s applied %d, before the healed write at %d", n.ID(), idx, rev)
		}
		kvs, err := staleListAll(ctx, n)
		if err != nil {
			return fmt.Errorf("%s: stale List: %w", n.ID(), err)
		}
		if idx2 := n.Status().AppliedIndex; idx2 != idx {
			return fmt.Errorf("%s applied %d then %d while it was listed", n.ID(), idx, idx2)
		}
		if i == 0 {
			first, firstIdx = kvs, idx
			continue
		}
		if idx != firstIdx {
			return fmt.Errorf("%s applied %d, %s applied %d", n.ID(), idx, nodes[0].ID(), firstIdx)
		}
		if !reflect.DeepEqual(kvs, first) {
			return fmt.Errorf("%s and %s differ at applied index %d: %v vs %v", n.ID(), nodes[0].ID(), idx, kvs, first)
		}
	}
	return nil
}

// staleListAll lists every key on n from its local state, page by page.
func staleListAll(ctx context.Context, n *skiff.Node) ([]skiff.KeyValue, error) {
	var out []skiff.KeyValue
	after := ""
	for {
		opts := []skiff.ReadOption{skiff.Stale()}
		if after != "" {
			opts = append(opts, skiff.WithAfter(after))
		}
		res, err := n.List(ctx, "", opts...)
		if err != nil {
			return nil, err
		}
		out = append(out, res.KVs...)
		if !res.More || len(res.KVs) == 0 {
			return out, nil
		}
		after = res.KVs[len(res.KVs)-1].Key
	}
}
