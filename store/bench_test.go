package store

import (
	"bytes"
	"fmt"
	"io"
	"runtime"
	"sync"
	"testing"
)

const (
	benchKeys     = 1_000_000
	benchValueLen = 256
)

// bench1M is the 1M-key view and its encoding, built once for all
// benchmarks that need them: building takes seconds.
var bench1M struct {
	once sync.Once
	view *View
	data []byte
}

func load1M(b *testing.B) (*View, []byte) {
	b.Helper()
	if testing.Short() {
		b.Skip("1M-key setup is slow; skipped in -short mode")
	}
	bench1M.once.Do(func() {
		s := New()
		t := s.Txn()
		for i := range benchKeys {
			t.Put(fmt.Sprintf("users/%08d", i), benchValue(i), 1)
		}
		t.Commit(1)
		bench1M.view = s.View()
		var buf bytes.Buffer
		if _, err := bench1M.view.WriteTo(&buf); err != nil {
			panic(err)
		}
		bench1M.data = buf.Bytes()
	})
	return bench1M.view, bench1M.data
}

// benchValue returns a distinct benchValueLen-byte value for i.
func benchValue(i int) []byte {
	v := bytes.Repeat([]byte{byte(i)}, benchValueLen)
	copy(v, fmt.Sprint(i))
	return v
}

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

func BenchmarkReadView1M(b *testing.B) {
	_, data := load1M(b)
	b.SetBytes(int64(len(data)))
	base := heapInUse()
	b.ResetTimer()
	var v *View
	for b.Loop() {
		v = nil // let the previous view go before decoding the next
		var err error
		if v, err = ReadView(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if v.Len() != benchKeys {
		b.Fatalf("Len() = %d, want %d", v.Len(), benchKeys)
	}
	used := heapInUse() - base
	b.ReportMetric(float64(used)/float64(v.Bytes()), "heap/raw")
	runtime.KeepAlive(v)
}

func BenchmarkWriteTo1M(b *testing.B) {
	v, data := load1M(b)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := v.WriteTo(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}

// benchStore returns a store holding n keys, committed at revision 1.
func benchStore(n int) *Store {
	s := New()
	t := s.Txn()
	for i := range n {
		t.Put(fmt.Sprintf("users/%08d", i), benchValue(i), 1)
	}
	t.Commit(1)
	return s
}

func benchTxnPut(b *testing.B, perTxn int) {
	const n = 100_000
	s := benchStore(n)
	val := benchValue(0)
	keys := make([]string, n)
	for i := range keys {
		// A multiplicative stride spreads writes over the whole tree.
		keys[i] = fmt.Sprintf("users/%08d", i*7919%n)
	}
	rev := uint64(1)
	b.ResetTimer()
	k := 0
	for b.Loop() {
		rev++
		t := s.Txn()
		for range perTxn {
			t.Put(keys[k], val, rev)
			k = (k + 1) % n
		}
		t.Commit(rev)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*perTxn), "ns/put")
}

func BenchmarkTxnPut(b *testing.B)         { benchTxnPut(b, 1) }
func BenchmarkTxnPutBatch256(b *testing.B) { benchTxnPut(b, 256) }
