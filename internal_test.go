package skiff

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/skiffkv/skiff/internal/command"
)

func TestSnapshotPolicy(t *testing.T) {
	const max = 50_000
	cases := []struct {
		entries, threshold uint64
		written, state     int64
		ratio              float64
		want               bool
	}{
		{100, 8192, 1 << 30, 1 << 20, 0.5, false},     // too few entries
		{10000, 8192, 100 << 10, 1 << 30, 0.5, false}, // large state, little written
		{10000, 8192, 600 << 20, 1 << 30, 0.5, true},  // half the state rewritten
		{10000, 8192, 1 << 10, 1 << 10, 0.5, true},    // small state
		{10000, 8192, 0, 1 << 30, 0, true},            // size rule disabled
		{8192, 8192, 512 << 20, 1 << 30, 0.5, true},   // both exactly met
		{max, 8192, 15 << 20, 1 << 30, 0.5, true},     // the log is long enough to slow a restart
		{max - 1, 8192, 15 << 20, 1 << 30, 0.5, false},
	}
	for _, tc := range cases {
		if got := snapshotDue(tc.entries, tc.threshold, max, tc.written, tc.state, tc.ratio); got != tc.want {
			t.Errorf("snapshotDue(%d entries, threshold %d, %d written, %d state, ratio %v) = %v, want %v",
				tc.entries, tc.threshold, tc.written, tc.state, tc.ratio, got, tc.want)
		}
	}
}

func TestEveryErrorSurvivesTheWire(t *testing.T) {
	for _, w := range wireErrors {
		err := fmt.Errorf("some context: %w", w.err)
		got := fromStatus(toStatus(err, "leader:1"))
		if !errors.Is(got, w.err) {
			t.Errorf("fromStatus(toStatus(%v)) = %v, does not match %v", err, got, w.err)
		}
		if got.Error() != err.Error() {
			t.Errorf("message %q became %q", err, got)
		}
		for _, other := range wireErrors {
			if other.err != w.err && errors.Is(got, other.err) {
				t.Errorf("%v also matches %v after the wire", w.err, other.err)
			}
		}
	}
	// Combined sentinels all survive, and the leader hint comes along.
	err := fromStatus(toStatus(fmt.Errorf("%w: %w", ErrNotLeader, ErrTimeout), "10.0.0.1:7000"))
	if !errors.Is(err, ErrNotLeader) || !errors.Is(err, ErrTimeout) || leaderHint(err) != "10.0.0.1:7000" {
		t.Fatalf("combined error = %v (hint %q)", err, leaderHint(err))
	}
	if err := fromStatus(toStatus(context.DeadlineExceeded, "")); !errors.Is(err, ErrTimeout) {
		t.Fatalf("deadline error = %v, want ErrTimeout", err)
	}
}

// An entry the state machine cannot read stops it: it applies neither
// that entry nor any later one, and reports ErrCorrupt naming the index,
// where applying anything else would make this replica differ.
func TestUnreadableEntryStopsTheStateMachine(t *testing.T) {
	good := command.Encode([]command.Op{putOp("a", []byte("v"))})
	flipped := append([]byte(nil), good...)
	flipped[len(flipped)-1] ^= 0x10
	inputs := map[string][]byte{
		"empty":        nil,
		"zero byte":    {0},
		"later format": {3, 1, 2, 3},
		"format 1 bad": {command.V1, 0xff, 0xff, 0xff},
		"bit flip":     flipped,
		"truncated":    good[:len(good)-2],
	}
	for name, data := range inputs {
		f := newFSM()
		var stopped error
		f.onFail = func(err error) { stopped = err }
		res := f.Apply(&raft.Log{Index: 7, Type: raft.LogCommand, Data: data}).(*entryResult)
		if !errors.Is(res.err, ErrCorrupt) || !strings.Contains(res.err.Error(), "log entry 7") {
			t.Errorf("%s: Apply = %v, want ErrCorrupt naming entry 7", name, res.err)
		}
		if !errors.Is(stopped, ErrCorrupt) {
			t.Errorf("%s: onFail got %v", name, stopped)
		}
		res = f.Apply(&raft.Log{Index: 8, Type: raft.LogCommand, Data: good}).(*entryResult)
		if res.err == nil || f.store.View().Len() != 0 || f.appliedIndex() != 0 {
			t.Errorf("%s: the state machine went on after it stopped (%v, %d keys)", name, res.err, f.store.View().Len())
		}
		if _, err := f.Snapshot(); err == nil {
			t.Errorf("%s: a stopped state machine took a snapshot", name)
		}
	}
}

// One entry may carry several operations: they apply in order at the
// entry's revision, each with its own condition and result, and watchers
// see each change.
func TestEntryWithSeveralOperations(t *testing.T) {
	f := newFSM()
	var published []change
	f.publish = func(cs []change, rev uint64, reset bool) { published = append(published, cs...) }
	data := command.Encode([]command.Op{
		putOp("a", []byte("1")),
		ifAbsent(putOp("a", []byte("2"))), // fails: a exists now
		putOp("a", []byte("3")),
		deleteOp("b"), // absent: succeeds, changes nothing
	})
	res := f.Apply(&raft.Log{Index: 5, Type: raft.LogCommand, Data: data}).(*entryResult)
	if res.err != nil || len(res.ops) != 4 {
		t.Fatalf("Apply = %+v", res)
	}
	if res.ops[0].err != nil || !errors.Is(res.ops[1].err, ErrExists) || res.ops[2].err != nil || res.ops[3].err != nil {
		t.Fatalf("results = %+v", res.ops)
	}
	e, _ := f.store.View().Get("a")
	if string(e.Value) != "3" || e.ModRevision != 5 || e.Version != 2 {
		t.Fatalf("a = %+v, want value 3 at revision 5, version 2", e)
	}
	if len(published) != 2 || published[1].kv.Version != 2 {
		t.Fatalf("published %+v, want the two puts", published)
	}
}

func FuzzApply(f *testing.F) {
	f.Add(command.Encode([]command.Op{putOp("a/b", []byte("v")), ifRevision(deleteOp("a/b"), 3)}))
	f.Add([]byte{command.V1, 0x0a, 0x05})
	f.Fuzz(func(t *testing.T, data []byte) {
		fsm := newFSM()
		res := fsm.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: data}).(*entryResult)
		if res.err != nil && fsm.store.View().Len() != 0 {
			t.Fatalf("a refused entry changed the state")
		}
	})
}

func putLog(idx uint64, key string, value []byte) *raft.Log {
	return &raft.Log{Index: idx, Type: raft.LogCommand, Data: command.Encode([]command.Op{putOp(key, value)})}
}

// BenchmarkApply measures the state machine applying batches of puts of
// 256-byte values over 100k keys, as Raft hands them over.
func BenchmarkApply(b *testing.B) {
	for _, batch := range []int{1, 256} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			f := newFSM()
			value := make([]byte, 256)
			logs := make([][]*raft.Log, 64)
			for i := range logs {
				for j := 0; j < batch; j++ {
					logs[i] = append(logs[i], putLog(0, fmt.Sprintf("bench/%06d", (i*batch+j)*7919%100000), value))
				}
			}
			b.ResetTimer()
			b.ReportAllocs()
			next := uint64(0)
			for i := 0; i < b.N; i++ {
				ls := logs[i%len(logs)]
				for _, l := range ls {
					next++
					l.Index = next // indexes keep growing across rounds
				}
				f.ApplyBatch(ls)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/entry")
		})
	}
}

// The scan cache answers from what replay read until the log changes;
// after a write every read goes to the store, so a truncated and
// rewritten tail is never served stale.
func TestScanCacheEndsAtFirstWrite(t *testing.T) {
	logs := raft.NewInmemStore()
	for i := uint64(1); i <= 3; i++ {
		if err := logs.StoreLog(&raft.Log{Index: i, Term: 1, Data: []byte("stored")}); err != nil {
			t.Fatal(err)
		}
	}
	c := &scanCache{LogStore: logs, first: 2}
	cached := []*raft.Log{{Index: 2, Term: 1, Data: []byte("cached")}, {Index: 3, Term: 1, Data: []byte("cached")}}
	c.entries.Store(&cached)
	read := func(idx uint64) string {
		var l raft.Log
		if err := c.GetLog(idx, &l); err != nil {
			t.Fatalf("GetLog(%d): %v", idx, err)
		}
		return string(l.Data)
	}
	if got := []string{read(1), read(2), read(3)}; fmt.Sprint(got) != "[stored cached cached]" {
		t.Fatalf("reads before a write = %q", got)
	}
	if err := c.DeleteRange(3, 3); err != nil {
		t.Fatal(err)
	}
	if err := c.StoreLogs([]*raft.Log{{Index: 3, Term: 2, Data: []byte("rewritten")}}); err != nil {
		t.Fatal(err)
	}
	if got := read(3); got != "rewritten" {
		t.Fatalf("read after the tail was rewritten = %q", got)
	}
}
