package process

import (
	"errors"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/skiffkv/skiff/faults"
)

// The invariants catch what they should and accept what a correct
// cluster may do.
func TestInvariants(t *testing.T) {
	put := func(v string, call, ret int64, out faults.Outcome, rev uint64) faults.Op {
		return faults.Op{Kind: faults.Put, Key: "w/k0", Value: v, Call: call, Return: ret, Outcome: out, OutRev: rev}
	}
	del := func(call, ret int64, out faults.Outcome) faults.Op {
		return faults.Op{Kind: faults.Delete, Key: "w/k0", Call: call, Return: ret, Outcome: out}
	}
	get := func(v string, mod uint64, call, ret int64) faults.Op {
		return faults.Op{Kind: faults.Get, Key: "w/k0", Call: call, Return: ret, Outcome: faults.OK,
			Got: faults.Entry{Key: "w/k0", Value: v, Mod: mod}}
	}
	notFound := func(call, ret int64) faults.Op {
		return faults.Op{Kind: faults.Get, Key: "w/k0", Call: call, Return: ret, Outcome: faults.OK, NotFound: true}
	}
	holds := func(v string, mod uint64) map[string]*faults.Entry {
		return map[string]*faults.Entry{"w/k0": {Key: "w/k0", Value: v, Mod: mod}}
	}
	never := faults.Never
	tests := []struct {
		name       string
		ops        []faults.Op
		final      map[string]*faults.Entry
		violations int
		lost       int
	}{
		{"last acknowledged put", []faults.Op{put("a", 0, 1, faults.OK, 5), put("b", 2, 3, faults.OK, 7)}, holds("b", 7), 0, 0},
		{"concurrent puts, either wins", []faults.Op{put("a", 0, 3, faults.OK, 7), put("b", 1, 2, faults.OK, 5)}, holds("a", 7), 0, 0},
		{"earlier put over a later acknowledged one", []faults.Op{put("a", 0, 1, faults.OK, 5), put("b", 2, 3, faults.OK, 7)}, holds("a", 5), 1, 1},
		{"unknown write explains the value", []faults.Op{put("a", 0, never, faults.Unknown, 0), put("b", 2, 3, faults.OK, 7)}, holds("a", 9), 0, 0},
		{"failed write took effect", []faults.Op{put("a", 0, 1, faults.Failed, 0)}, holds("a", 4), 1, 0},
		{"value nobody wrote", nil, holds("z", 4), 1, 0},
		{"wrong mod revision", []faults.Op{put("a", 0, 1, faults.OK, 5)}, holds("a", 6), 1, 0},
		{"absent after a concurrent delete", []faults.Op{put("a", 0, 2, faults.OK, 5), del(1, 3, faults.OK)}, nil, 0, 0},
		{"absent after an unknown delete", []faults.Op{del(0, never, faults.Unknown), put("a", 1, 2, faults.OK, 5)}, nil, 0, 0},
		{"absent, the delete came first", []faults.Op{del(0, 1, faults.OK), put("a", 2, 3, faults.OK, 5)}, nil, 1, 1},
		{"absent, the delete failed", []faults.Op{put("a", 0, 1, faults.OK, 5), del(2, 3, faults.Failed)}, nil, 1, 1},
		{"absent, nothing acknowledged", []faults.Op{put("a", 0, never, faults.Unknown, 0)}, nil, 0, 0},
		{"read of an acknowledged write", []faults.Op{put("a", 0, 2, faults.OK, 5), get("a", 5, 1, 3)}, holds("a", 5), 0, 0},
		{"read of a failed write", []faults.Op{put("a", 0, 1, faults.Failed, 0), get("a", 5, 2, 3)}, nil, 1, 0},
		{"read before the write", []faults.Op{get("a", 5, 0, 1), put("a", 2, 3, faults.OK, 5)}, holds("a", 5), 1, 0},
		{"stale read", []faults.Op{put("a", 0, 1, faults.OK, 5), put("b", 2, 3, faults.OK, 7), get("a", 5, 4, 5)}, holds("b", 7), 1, 0},
		{"read concurrent with the newer write", []faults.Op{put("a", 0, 1, faults.OK, 5), put("b", 2, 5, faults.OK, 7), get("a", 5, 4, 6)}, holds("b", 7), 0, 0},
		{"not found after an acknowledged put", []faults.Op{put("a", 0, 1, faults.OK, 5), notFound(2, 3)}, holds("a", 5), 1, 0},
		{"not found after a put and a delete", []faults.Op{put("a", 0, 1, faults.OK, 5), del(2, never, faults.Unknown), notFound(3, 4)}, nil, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vs := append(checkFinal(tt.ops, tt.final), checkReads(tt.ops)...)
			vs = append(vs, checkStale(tt.ops)...)
			lost := 0
			for _, v := range vs {
				if v.lost {
					lost++
				}
			}
			if len(vs) != tt.violations || lost != tt.lost {
				t.Errorf("violations = %d (%d lost), want %d (%d lost): %v", len(vs), lost, tt.violations, tt.lost, vs)
			}
		})
	}
}

// The shared checker, as a run calls it on a history that went through
// the client's history file, passes a correct history and fails doctored
// ones: a stale read, an acknowledged write lost, and an unknown outcome
// recorded as if it had returned.
func TestHistoryCheck(t *testing.T) {
	entry := func(v string, create, mod, version uint64) faults.Entry {
		return faults.Entry{Key: "w/k0", Value: v, Create: create, Mod: mod, Version: version}
	}
	put := func(v string, call, ret int64, rev uint64) faults.Op {
		return faults.Op{Client: 0, Kind: faults.Put, Key: "w/k0", Value: v, Call: call, Return: ret, Outcome: faults.OK, OutRev: rev}
	}
	unknown := func(v string, ret int64) faults.Op {
		return faults.Op{Client: 1, Kind: faults.Put, Key: "w/k0", Value: v, Call: 3, Return: ret, Outcome: faults.Unknown, Err: "indeterminate"}
	}
	get := func(e faults.Entry, call int64) faults.Op {
		return faults.Op{Client: 2, Kind: faults.Get, Key: "w/k0", Call: call, Return: call + 1, Outcome: faults.OK, Got: e}
	}
	list := func(e faults.Entry, call int64) faults.Op {
		return faults.Op{Client: 3, Kind: faults.List, Call: call, Return: call + 1, Outcome: faults.OK, Listed: []faults.Entry{e}}
	}
	a, b, u := entry("a", 5, 5, 1), entry("b", 5, 7, 2), entry("u", 5, 9, 3)
	tests := []struct {
		name       string
		ops        []faults.Op
		violation  bool // not linearizable
		lostWrites int
	}{
		{"unknown write seen after a later one", []faults.Op{put("a", 1, 2, 5), unknown("u", faults.Never), put("b", 5, 6, 7),
			get(u, 10), list(u, 12)}, false, 0},
		{"unknown write recorded as returned", []faults.Op{put("a", 1, 2, 5), unknown("u", 4), put("b", 5, 6, 7),
			get(u, 10), list(u, 12)}, true, 0},
		{"stale read", []faults.Op{put("a", 1, 2, 5), put("b", 3, 4, 7), get(b, 5), get(a, 7), list(b, 9)}, true, 0},
		{"acknowledged write lost", []faults.Op{put("a", 1, 2, 5), put("b", 3, 4, 7), get(a, 5), list(a, 7)}, true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "history.jsonl")
			if err := writeHistory(path, tt.ops); err != nil {
				t.Fatal(err)
			}
			ops := readHistory(t, path)
			if !reflect.DeepEqual(ops, tt.ops) {
				t.Fatalf("history read back = %+v, want %+v", ops, tt.ops)
			}
			h := checkHistory(ops, t.TempDir())
			if got := h.err != nil; got != tt.violation {
				t.Errorf("checkHistory: linearizability error %v, want one: %v", h.err, tt.violation)
			}
			if h.err != nil && !errors.Is(h.err, faults.ErrNotLinearizable) {
				t.Errorf("checkHistory: %v, want ErrNotLinearizable", h.err)
			}
			if len(h.lost) != tt.lostWrites {
				t.Errorf("checkHistory: %d lost writes, want %d: %+v", len(h.lost), tt.lostWrites, h.lost)
			}
			want := tt.lostWrites
			if tt.violation {
				want++
			}
			if fs := h.failures(); len(fs) != want {
				t.Errorf("failures() = %q, want %d", fs, want)
			}
		})
	}
}
