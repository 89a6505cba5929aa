package faults

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/skiffkv/skiff"
	"github.com/skiffkv/skiff/skifftest"
)

// h builds a history by hand: each op gets Call 10*i and Return 10*i+5
// unless it sets them.
func h(ops ...Op) []Op {
	for i := range ops {
		if ops[i].Call == 0 && ops[i].Return == 0 {
			ops[i].Call, ops[i].Return = int64(10*i+1), int64(10*i+5)
		}
		if ops[i].Outcome == "" {
			ops[i].Outcome = OK
		}
	}
	return ops
}

func get(key, value string, create, mod, version uint64) Op {
	return Op{Kind: Get, Key: key, Got: Entry{Key: key, Value: value, Create: create, Mod: mod, Version: version}}
}

func TestModel(t *testing.T) {
	unknownPut := Op{Kind: Put, Key: "a", Value: "u", Outcome: Unknown, Call: 1, Return: Never}
	tests := []struct {
		name string
		ops  []Op
		ok   bool
	}{
		{"revisions with gaps", h(Op{Kind: Put, Key: "a", Value: "x", OutRev: 3}, Op{Kind: Put, Key: "a", Value: "y", OutRev: 9},
			get("a", "y", 3, 9, 2)), true},
		{"revision going back", h(Op{Kind: Put, Key: "a", Value: "x", OutRev: 9}, Op{Kind: Put, Key: "b", Value: "y", OutRev: 5}), false},
		{"stale read", h(Op{Kind: Put, Key: "a", Value: "x", OutRev: 3}, Op{Kind: Put, Key: "a", Value: "y", OutRev: 4},
			get("a", "x", 3, 3, 1)), false},
		{"create on a present key", h(Op{Kind: Put, Key: "a", Value: "x", OutRev: 3}, Op{Kind: Create, Key: "a", Value: "y", OutRev: 4}), false},
		{"create mismatch on a present key", h(Op{Kind: Put, Key: "a", Value: "x", OutRev: 3},
			Op{Kind: Create, Key: "a", Value: "y", Outcome: Failed, Mismatch: true}), true},
		{"create mismatch on an absent key", h(Op{Kind: Create, Key: "a", Value: "y", Outcome: Failed, Mismatch: true}), false},
		{"cas", h(Op{Kind: Put, Key: "a", Value: "x", OutRev: 3}, Op{Kind: CAS, Key: "a", Value: "y", Rev: 3, OutRev: 5},
			get("a", "y", 3, 5, 2)), true},
		{"cas on another revision", h(Op{Kind: Put, Key: "a", Value: "x", OutRev: 3}, Op{Kind: CAS, Key: "a", Value: "y", Rev: 2, OutRev: 5}), false},
		{"deleteif then not found", h(Op{Kind: Put, Key: "a", Value: "x", OutRev: 3}, Op{Kind: DeleteIf, Key: "a", Rev: 3},
			Op{Kind: Get, Key: "a", NotFound: true}), true},
		{"failed write changed something", h(Op{Kind: Put, Key: "a", Value: "x", Outcome: Failed, Err: "no leader"},
			get("a", "x", 3, 3, 1)), false},
		{"unknown write seen later, revision pinned", h(unknownPut, get("a", "u", 7, 7, 1),
			Op{Kind: CAS, Key: "a", Value: "v", Rev: 7, OutRev: 8}), true},
		{"unknown write never seen", h(unknownPut, Op{Kind: Get, Key: "a", NotFound: true}), true},
		{"unknown write pinned below a later write", h(Op{Kind: Put, Key: "b", Value: "x", OutRev: 5},
			Op{Kind: Put, Key: "a", Value: "u", Outcome: Unknown, Call: 6, Return: Never}, get("a", "u", 4, 4, 1)), false},
		{"unknown write pinned above a later write", h(Op{Kind: Put, Key: "a", Value: "u", Outcome: Unknown, Call: 1, Return: Never},
			get("a", "u", 4, 4, 1), Op{Kind: Put, Key: "b", Value: "x", OutRev: 3}), false},
		{"unknown conditional write that cannot apply", h(Op{Kind: Put, Key: "a", Value: "x", OutRev: 3},
			Op{Kind: DeleteIf, Key: "a", Rev: 2, Outcome: Unknown, Call: 6, Return: Never}, get("a", "x", 3, 3, 1)), true},
		{"unknown write counted in versions", h(Op{Kind: Put, Key: "a", Value: "x", OutRev: 3}, unknownPut,
			Op{Kind: Put, Key: "a", Value: "y", OutRev: 9}, get("a", "y", 3, 9, 3)), true},
		{"list", h(Op{Kind: Put, Key: "a", Value: "x", OutRev: 3}, Op{Kind: List, Listed: []Entry{{Key: "a", Value: "x", Create: 3, Mod: 3, Version: 1}}}), true},
		{"list missing a key", h(Op{Kind: Put, Key: "a", Value: "x", OutRev: 3}, Op{Kind: List}), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckLinearizable(tt.ops, CheckOptions{Dir: t.TempDir()})
			if (err == nil) != tt.ok {
				t.Fatalf("CheckLinearizable = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrNotLinearizable) {
				t.Fatalf("CheckLinearizable = %v, want ErrNotLinearizable", err)
			}
		})
	}
}

// The checker passes a real history of a healthy cluster and flags the
// same history with a stale read or a dropped acknowledged write injected.
func TestCheckerSelfTest(t *testing.T) {
	ops := healthyHistory(t)
	start := time.Now()
	if err := CheckLinearizable(ops, CheckOptions{Dir: t.TempDir()}); err != nil {
		t.Fatalf("healthy history of %d operations: %v", len(ops), err)
	}
	t.Logf("healthy history: %d operations checked in %v", len(ops), time.Since(start))
	if lost := LostWrites(ops); len(lost) != 0 {
		t.Fatalf("LostWrites(healthy) = %v, want none", lost)
	}

	for _, inj := range []struct {
		name   string
		inject func(testing.TB, []Op) []Op
		lost   bool
	}{
		{"stale read", injectStaleRead, false},
		{"dropped acknowledged write", injectDroppedWrite, true},
	} {
		t.Run(inj.name, func(t *testing.T) {
			bad := inj.inject(t, append([]Op(nil), ops...))
			start := time.Now()
			err := CheckLinearizable(bad, CheckOptions{Dir: t.TempDir(), Name: "selftest"})
			if !errors.Is(err, ErrNotLinearizable) {
				t.Fatalf("CheckLinearizable with a %s = %v, want ErrNotLinearizable", inj.name, err)
			}
			path := err.Error()[strings.LastIndex(err.Error(), " ")+1:]
			if fi, serr := os.Stat(path); serr != nil || fi.Size() == 0 {
				t.Fatalf("visualization %s: %v", path, serr)
			}
			t.Logf("flagged in %v: %v", time.Since(start), err)
			if got := len(LostWrites(bad)) > 0; got != inj.lost {
				t.Fatalf("LostWrites found some = %v, want %v", got, inj.lost)
			}
		})
	}
}

// healthyHistory records a workload on a healthy three-node cluster,
// through a network client and through two nodes directly.
func healthyHistory(t testing.TB) []Op {
	t.Helper()
	c := skifftest.NewCluster(t, 3, &skifftest.Options{Quiet: true})
	rec := NewRecorder()
	runUntil(30*time.Second, Workload{Seed: 7, Clients: 6}, []skiff.KV{c.Client(nil), c.Node(0), c.Node(1)}, rec,
		func(ops []Op) bool { return len(ops) >= 1000 })
	ops := rec.Ops()
	if len(ops) < 100 {
		t.Fatalf("the workload recorded %d operations, want at least 100", len(ops))
	}
	return ops
}

// writes returns the acknowledged writes that set a value, and the first
// read observation of each value.
func writesAndReads(ops []Op) ([]Op, map[string]Entry) {
	var ws []Op
	seen := map[string]Entry{}
	for _, o := range ops {
		if o.Outcome == OK && o.OutRev > 0 {
			ws = append(ws, o)
		}
		if o.Kind == Get && o.Outcome == OK && !o.NotFound {
			seen[o.Got.Value] = o.Got
		}
	}
	return ws, seen
}

// injectStaleRead adds a Get, after a write W has returned, that sees the
// state W replaced. The read must not make a write look lost too: W and
// every other acknowledged write of the key that the stale state predates
// and that returned before the read are ones that reads saw.
func injectStaleRead(t testing.TB, ops []Op) []Op {
	t.Helper()
	ws, seen := writesAndReads(ops)
	for _, w := range ws {
		if _, ok := seen[w.Value]; !ok {
			continue
		}
		for _, prev := range ws {
			e, ok := seen[prev.Value]
			if prev.Key == w.Key && ok && e.Mod == prev.OutRev && prev.OutRev < w.OutRev &&
				allSeen(ws, seen, w.Key, prev.OutRev, w.Return+1) {
				return append(ops, Op{Client: 99, Kind: Get, Key: w.Key, Outcome: OK, Got: e, Call: w.Return + 1, Return: w.Return + 2})
			}
		}
	}
	t.Fatal("no write in the history replaced a state that a read saw")
	return nil
}

// allSeen reports whether reads saw every acknowledged write of key above
// revision after that returned before time before.
func allSeen(ws []Op, seen map[string]Entry, key string, after uint64, before int64) bool {
	for _, w := range ws {
		if _, ok := seen[w.Value]; !ok && w.Key == key && w.OutRev > after && w.Return < before {
			return false
		}
	}
	return true
}

// injectDroppedWrite picks an acknowledged write W that reads saw after it
// returned, and makes every read of W's state see the state before it
// instead, as if the cluster had acknowledged W and then lost it.
func injectDroppedWrite(t testing.TB, ops []Op) []Op {
	t.Helper()
	ws, seen := writesAndReads(ops)
	for _, w := range ws {
		before, ok := predecessor(ws, seen, w)
		if !ok || !readAfter(ops, w) {
			continue
		}
		for i := range ops {
			if ops[i].Kind == Get && ops[i].Outcome == OK && ops[i].Got.Value == w.Value {
				ops[i].Got = before
			}
			for j := range ops[i].Listed {
				if ops[i].Listed[j].Value == w.Value {
					ops[i].Listed[j] = before
				}
			}
		}
		return ops
	}
	t.Fatal("no acknowledged write with a seen predecessor was read after it returned")
	return nil
}

// predecessor returns the state a read saw that w's key had just before w.
func predecessor(ws []Op, seen map[string]Entry, w Op) (Entry, bool) {
	var best Op
	for _, p := range ws {
		if p.Key == w.Key && p.OutRev < w.OutRev && p.OutRev > best.OutRev {
			best = p
		}
	}
	e, ok := seen[best.Value]
	return e, ok && best.OutRev > 0 && e.Mod == best.OutRev
}

// readAfter reports whether a Get that started after w returned saw w.
func readAfter(ops []Op, w Op) bool {
	for _, o := range ops {
		if o.Kind == Get && o.Call > w.Return && o.Got.Value == w.Value {
			return true
		}
	}
	return false
}
