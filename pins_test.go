package skiff

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/skiffkv/skiff/store"
)

// viewAt returns a view of a store holding one key written at rev.
func viewAt(t *testing.T, rev uint64) *store.View {
	t.Helper()
	s := store.New()
	tx := s.Txn()
	tx.Put("k", []byte("v"), rev)
	tx.Commit(rev)
	return s.View()
}

// Pins expire pinTTL after their last use, the least recently used goes
// past maxPins, and a pin answers only in the generation it was made in.
func TestViewPins(t *testing.T) {
	p := newViewPins()
	defer p.clear()
	clock := time.Unix(1000, 0)
	p.now = func() time.Time { return clock }
	gone := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, ErrCompacted) || !strings.Contains(err.Error(), "start the listing again") {
			t.Fatalf("%s: err = %v, want ErrCompacted saying to start again", what, err)
		}
	}

	v := viewAt(t, 5)
	p.pin(v, 0)
	if got, err := p.get(5, 0); err != nil || got != v {
		t.Fatalf("get(5) = %p, %v; want the pinned view %p", got, err, v)
	}
	_, err := p.get(5, 1)
	gone("get in a later generation", err)
	_, err = p.get(6, 0)
	gone("get of a revision never pinned", err)

	clock = clock.Add(pinTTL - time.Second)
	if _, err := p.get(5, 0); err != nil {
		t.Fatalf("get(5) within the TTL: %v", err)
	}
	clock = clock.Add(pinTTL - time.Second) // within the TTL of the last use
	if _, err := p.get(5, 0); err != nil {
		t.Fatalf("get(5) within the TTL of its last use: %v", err)
	}
	clock = clock.Add(pinTTL)
	_, err = p.get(5, 0)
	gone("get after the TTL", err)

	for rev := uint64(100); rev < 100+maxPins; rev++ {
		p.pin(viewAt(t, rev), 0)
		clock = clock.Add(time.Millisecond)
	}
	if _, err := p.get(100, 0); err != nil { // now the most recently used
		t.Fatal(err)
	}
	p.pin(viewAt(t, 100+maxPins), 0)
	_, err = p.get(101, 0)
	gone("get of the least recently used pin past the bound", err)
	for _, rev := range []uint64{100, 102, 100 + maxPins} {
		if _, err := p.get(rev, 0); err != nil {
			t.Fatalf("get(%d) after an eviction: %v", rev, err)
		}
	}
}
