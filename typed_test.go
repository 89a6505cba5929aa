package skiff_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/skiffkv/skiff"
	"github.com/skiffkv/skiff/skifftest"
)

type address struct {
	Street string
	City   string
}

type profile struct {
	Name    string
	Age     int
	Tags    []string
	Limits  map[string]int
	Home    address
	Offices []address
	Joined  time.Time
}

type counter struct {
	N int
}

func sampleProfile() profile {
	return profile{
		Name:    "alice",
		Age:     41,
		Tags:    []string{"admin", "ops"},
		Limits:  map[string]int{"cpu": 4, "disks": 2},
		Home:    address{Street: "1 Main St", City: "Springfield"},
		Offices: []address{{City: "Berlin"}, {City: "Lisbon"}},
		Joined:  time.Date(2024, 3, 1, 12, 30, 0, 123456789, time.UTC),
	}
}

func TestTypedRoundTrip(t *testing.T) {
	c := skifftest.NewCluster(t, 1, nil)
	ctx := testCtx(t)
	for _, tc := range []struct {
		name  string
		codec skiff.Codec
	}{
		{"default", nil},
		{"json", skiff.JSONCodec{}},
		{"gob", skiff.GobCodec{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			users := skiff.NewTyped[profile](c.Node(0), tc.codec)
			key := "users/" + tc.name
			want := sampleProfile()
			rev, err := users.Put(ctx, key, want)
			if err != nil {
				t.Fatalf("Put(%q) = %v", key, err)
			}
			got, kv, err := users.Get(ctx, key)
			if err != nil {
				t.Fatalf("Get(%q) = %v", key, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Get(%q) = %+v, want %+v", key, got, want)
			}
			if kv.Key != key || kv.ModRevision != rev || kv.CreateRevision != rev || kv.Version != 1 {
				t.Errorf("Get(%q) KeyValue = %+v, want revisions %d and version 1", key, kv, rev)
			}
			if isJSON := json.Valid(kv.Value); isJSON != (tc.codec != skiff.Codec(skiff.GobCodec{})) {
				t.Errorf("stored bytes %q: valid JSON = %t", kv.Value, isJSON)
			}
		})
	}
}

func TestTypedGetMissing(t *testing.T) {
	c := skifftest.NewCluster(t, 1, nil)
	users := skiff.NewTyped[profile](c.Node(0), nil)
	got, kv, err := users.Get(testCtx(t), "users/nobody")
	if !errors.Is(err, skiff.ErrNotFound) {
		t.Fatalf("Get(%q) error = %v, want ErrNotFound", "users/nobody", err)
	}
	if kv != nil || !reflect.DeepEqual(got, profile{}) {
		t.Errorf("Get(%q) = %+v, %+v, want zero value and nil KeyValue", "users/nobody", got, kv)
	}
}

func wantDecodeError(t testing.TB, what string, err error, key string, rev uint64) {
	t.Helper()
	if !errors.Is(err, skiff.ErrDecode) {
		t.Fatalf("%s error = %v, want ErrDecode", what, err)
	}
	var de *skiff.DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("%s error = %v (%T), want a *DecodeError", what, err, err)
	}
	if de.Key != key || de.Revision != rev || de.Err == nil {
		t.Errorf("%s DecodeError = {Key: %q, Revision: %d, Err: %v}, want key %q at revision %d",
			what, de.Key, de.Revision, de.Err, key, rev)
	}
	if !strings.Contains(err.Error(), key) {
		t.Errorf("%s error %q does not name key %q", what, err, key)
	}
}

func TestTypedDecodeError(t *testing.T) {
	c := skifftest.NewCluster(t, 1, nil)
	ctx := testCtx(t)
	node := c.Node(0)
	users := skiff.NewTyped[profile](node, nil)

	badRev, err := node.Put(ctx, "users/bad", []byte("not json"))
	if err != nil {
		t.Fatal(err)
	}
	wrongRev, err := node.Put(ctx, "users/wrong", []byte(`{"Name": 42}`))
	if err != nil {
		t.Fatal(err)
	}

	got, kv, err := users.Get(ctx, "users/bad")
	wantDecodeError(t, `Get("users/bad")`, err, "users/bad", badRev)
	if kv == nil || string(kv.Value) != "not json" || !reflect.DeepEqual(got, profile{}) {
		t.Errorf(`Get("users/bad") = %+v, %+v, want zero value and the raw KeyValue`, got, kv)
	}

	// The codec's own error stays reachable.
	_, _, err = users.Get(ctx, "users/wrong")
	wantDecodeError(t, `Get("users/wrong")`, err, "users/wrong", wrongRev)
	var typeErr *json.UnmarshalTypeError
	if !errors.As(err, &typeErr) {
		t.Errorf(`Get("users/wrong") error = %v, want it to wrap a *json.UnmarshalTypeError`, err)
	}

	if _, err := users.List(ctx, "users"); err == nil {
		t.Fatal(`List("users") succeeded over an undecodable value`)
	} else {
		wantDecodeError(t, `List("users")`, err, "users/bad", badRev)
	}

	called := false
	_, _, err = users.Update(ctx, "users/bad", func(old profile, exists bool) (profile, error) {
		called = true
		return old, nil
	})
	wantDecodeError(t, `Update("users/bad")`, err, "users/bad", badRev)
	if called {
		t.Error(`Update("users/bad") called fn on an undecodable value`)
	}
}

func TestTypedEncodeErrorWritesNothing(t *testing.T) {
	c := skifftest.NewCluster(t, 1, nil)
	ctx := testCtx(t)
	values := skiff.NewTyped[any](c.Node(0), nil)
	const key = "things/chan"
	writes := map[string]func() error{
		"Put": func() error { _, err := values.Put(ctx, key, make(chan int)); return err },
		"Create": func() error {
			_, err := values.Create(ctx, key, make(chan int))
			return err
		},
		"CompareAndSwap": func() error {
			_, err := values.CompareAndSwap(ctx, key, make(chan int), 1)
			return err
		},
		"Update": func() error {
			_, _, err := values.Update(ctx, key, func(any, bool) (any, error) { return make(chan int), nil })
			return err
		},
	}
	for name, write := range writes {
		err := write()
		if !errors.Is(err, skiff.ErrInvalidArgument) || !strings.Contains(err.Error(), key) {
			t.Errorf("%s(%q) = %v, want ErrInvalidArgument naming the key", name, key, err)
		}
	}
	if _, err := c.Node(0).Get(ctx, key); !errors.Is(err, skiff.ErrNotFound) {
		t.Errorf("Get(%q) after failed encodes = %v, want ErrNotFound", key, err)
	}
}

func TestTypedCreateAndCompareAndSwap(t *testing.T) {
	c := skifftest.NewCluster(t, 1, nil)
	ctx := testCtx(t)
	counters := skiff.NewTyped[counter](c.Node(0), nil)
	const key = "counters/a"

	rev1, err := counters.Create(ctx, key, counter{N: 1})
	if err != nil {
		t.Fatalf("Create(%q) = %v", key, err)
	}
	if _, err := counters.Create(ctx, key, counter{N: 2}); !errors.Is(err, skiff.ErrExists) {
		t.Fatalf("second Create(%q) = %v, want ErrExists", key, err)
	}

	rev2, err := counters.CompareAndSwap(ctx, key, counter{N: 3}, rev1)
	if err != nil || rev2 <= rev1 {
		t.Fatalf("CompareAndSwap(%q, rev %d) = %d, %v, want a later revision", key, rev1, rev2, err)
	}
	if _, err := counters.CompareAndSwap(ctx, key, counter{N: 4}, rev1); !errors.Is(err, skiff.ErrRevisionMismatch) {
		t.Fatalf("CompareAndSwap(%q, stale rev %d) = %v, want ErrRevisionMismatch", key, rev1, err)
	}
	if _, err := counters.CompareAndSwap(ctx, "counters/absent", counter{}, rev2); !errors.Is(err, skiff.ErrRevisionMismatch) {
		t.Fatalf("CompareAndSwap(absent) = %v, want ErrRevisionMismatch", err)
	}
	got, kv, err := counters.Get(ctx, key)
	if err != nil || got.N != 3 || kv.ModRevision != rev2 || kv.CreateRevision != rev1 || kv.Version != 2 {
		t.Fatalf("Get(%q) = %+v, %+v, %v, want N=3 at revision %d created at %d, version 2", key, got, kv, err, rev2, rev1)
	}

	if err := counters.DeleteIf(ctx, key, rev1); !errors.Is(err, skiff.ErrRevisionMismatch) {
		t.Fatalf("DeleteIf(%q, stale rev) = %v, want ErrRevisionMismatch", key, err)
	}
	if err := counters.DeleteIf(ctx, key, rev2); err != nil {
		t.Fatalf("DeleteIf(%q, rev %d) = %v", key, rev2, err)
	}
	if _, _, err := counters.Get(ctx, key); !errors.Is(err, skiff.ErrNotFound) {
		t.Fatalf("Get(%q) after DeleteIf = %v, want ErrNotFound", key, err)
	}
	if _, err := counters.Put(ctx, key, counter{N: 5}); err != nil {
		t.Fatal(err)
	}
	if err := counters.Delete(ctx, key); err != nil {
		t.Fatalf("Delete(%q) = %v", key, err)
	}
	if _, _, err := counters.Get(ctx, key); !errors.Is(err, skiff.ErrNotFound) {
		t.Fatalf("Get(%q) after Delete = %v, want ErrNotFound", key, err)
	}
}

func TestTypedList(t *testing.T) {
	c := skifftest.NewCluster(t, 1, nil)
	ctx := testCtx(t)
	counters := skiff.NewTyped[counter](c.Node(0), skiff.GobCodec{})

	created := map[string]uint64{}
	for i, k := range []string{"c/zed", "c/alpha", "c/mid"} {
		rev, err := counters.Put(ctx, k, counter{N: i})
		if err != nil {
			t.Fatal(err)
		}
		created[k] = rev
	}
	modRev, err := counters.Put(ctx, "c/alpha", counter{N: 10})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Node(0).Put(ctx, "other/x", []byte("not gob")); err != nil {
		t.Fatal(err)
	}

	res, err := counters.List(ctx, "c")
	if err != nil {
		t.Fatalf("List(%q) = %v", "c", err)
	}
	want := []skiff.TypedEntry[counter]{
		{Key: "c/alpha", Value: counter{N: 10}, CreateRevision: created["c/alpha"], ModRevision: modRev, Version: 2},
		{Key: "c/mid", Value: counter{N: 2}, CreateRevision: created["c/mid"], ModRevision: created["c/mid"], Version: 1},
		{Key: "c/zed", Value: counter{N: 0}, CreateRevision: created["c/zed"], ModRevision: created["c/zed"], Version: 1},
	}
	if !reflect.DeepEqual(res.Entries, want) || res.More || res.Revision < modRev {
		t.Errorf("List(%q) = %+v, want entries %+v, More false, Revision >= %d", "c", res, want, modRev)
	}

	// Pages.
	var paged []string
	after := ""
	for {
		page, err := counters.List(ctx, "c", skiff.WithLimit(2), skiff.WithAfter(after))
		if err != nil {
			t.Fatalf("List page after %q = %v", after, err)
		}
		for _, e := range page.Entries {
			paged = append(paged, e.Key)
		}
		if !page.More {
			break
		}
		after = page.Entries[len(page.Entries)-1].Key
	}
	if wantKeys := []string{"c/alpha", "c/mid", "c/zed"}; !slices.Equal(paged, wantKeys) {
		t.Errorf("paged List = %v, want %v", paged, wantKeys)
	}

	if _, err := counters.List(ctx, "c", skiff.WithKeysOnly()); !errors.Is(err, skiff.ErrInvalidArgument) {
		t.Errorf("List with WithKeysOnly = %v, want ErrInvalidArgument", err)
	}
	if _, err := counters.List(ctx, "c", skiff.WithLimit(-1)); !errors.Is(err, skiff.ErrInvalidArgument) {
		t.Errorf("List with WithLimit(-1) = %v, want ErrInvalidArgument", err)
	}
	if res, err := counters.List(ctx, "empty"); err != nil || len(res.Entries) != 0 {
		t.Errorf("List(%q) = %+v, %v, want no entries", "empty", res, err)
	}
}

func TestTypedUpdate(t *testing.T) {
	c := skifftest.NewCluster(t, 1, nil)
	ctx := testCtx(t)
	counters := skiff.NewTyped[counter](c.Node(0), nil)
	const key = "counters/u"
	inc := func(old counter, exists bool) (counter, error) {
		old.N++
		return old, nil
	}

	var sawExists []bool
	for range 2 {
		_, _, err := counters.Update(ctx, key, func(old counter, exists bool) (counter, error) {
			sawExists = append(sawExists, exists)
			return inc(old, exists)
		})
		if err != nil {
			t.Fatalf("Update(%q) = %v", key, err)
		}
	}
	if want := []bool{false, true}; !slices.Equal(sawExists, want) {
		t.Errorf("Update(%q) passed exists = %v, want %v", key, sawExists, want)
	}
	got, rev, err := counters.Update(ctx, key, inc)
	if err != nil || got.N != 3 {
		t.Fatalf("Update(%q) = %+v, %v, want N=3", key, got, err)
	}
	if _, kv, err := counters.Get(ctx, key); err != nil || kv.ModRevision != rev {
		t.Errorf("Get(%q) = %+v, %v, want revision %d from Update", key, kv, err, rev)
	}

	// An error from fn comes back unchanged and writes nothing.
	errStop := errors.New("stop")
	if _, _, err := counters.Update(ctx, key, func(counter, bool) (counter, error) {
		return counter{N: 100}, errStop
	}); err != errStop {
		t.Errorf("Update(%q) with failing fn = %v, want %v", key, err, errStop)
	}
	if got, _, err := counters.Get(ctx, key); err != nil || got.N != 3 {
		t.Errorf("Get(%q) = %+v, %v, want N=3 after failed Update", key, got, err)
	}

	// A canceled context stops the loop.
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := counters.Update(canceled, key, inc); !errors.Is(err, context.Canceled) {
		t.Errorf("Update(%q) with a canceled context = %v, want context.Canceled", key, err)
	}
}

func TestTypedUpdateConcurrentAcrossNodes(t *testing.T) {
	c := skifftest.NewCluster(t, 3, nil)
	ctx := testCtx(t)
	const (
		key        = "counters/shared"
		goroutines = 8
		increments = 10
	)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		results []int
	)
	for i := range goroutines {
		counters := skiff.NewTyped[counter](c.Node(i%3), nil)
		wg.Go(func() {
			for range increments {
				got, _, err := counters.Update(ctx, key, func(old counter, _ bool) (counter, error) {
					old.N++
					return old, nil
				})
				if err != nil {
					t.Errorf("goroutine %d: Update(%q) = %v", i, key, err)
					return
				}
				mu.Lock()
				results = append(results, got.N)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	got, kv, err := skiff.NewTyped[counter](c.Node(0), nil).Get(ctx, key)
	if want := goroutines * increments; err != nil || got.N != want || kv.Version != uint64(want) {
		t.Fatalf("Get(%q) = %+v, %+v, %v, want N=%d at version %d", key, got, kv, err, want, want)
	}
	// Every Update saw the value the previous one left: each count 1..80
	// was returned exactly once.
	slices.Sort(results)
	for i, n := range results {
		if n != i+1 {
			t.Fatalf("Update results = %v, want each of 1..%d once", results, goroutines*increments)
		}
	}
}

// conflictKV is a KV whose key always exists and whose CompareAndSwap
// always fails with casErr, to drive Update's retry loop.
type conflictKV struct {
	skiff.KV // nil: other methods are not called
	casErr   error

	mu    sync.Mutex
	swaps int
}

func (f *conflictKV) Get(ctx context.Context, key string, _ ...skiff.ReadOption) (*skiff.KeyValue, error) {
	return &skiff.KeyValue{Key: key, Value: []byte(`{"N":1}`), CreateRevision: 1, ModRevision: 1, Version: 1}, nil
}

func (f *conflictKV) CompareAndSwap(ctx context.Context, key string, _ []byte, _ uint64) (uint64, error) {
	f.mu.Lock()
	f.swaps++
	f.mu.Unlock()
	return 0, f.casErr
}

func TestTypedUpdateRetryPolicy(t *testing.T) {
	inc := func(old counter, _ bool) (counter, error) { old.N++; return old, nil }

	t.Run("conflicts retry until the deadline", func(t *testing.T) {
		kv := &conflictKV{casErr: fmt.Errorf("%w: someone else", skiff.ErrRevisionMismatch)}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, _, err := skiff.NewTyped[counter](kv, nil).Update(ctx, "k", inc)
		if !errors.Is(err, skiff.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Update under endless conflicts = %v, want ErrTimeout and DeadlineExceeded", err)
		}
		if kv.swaps < 2 {
			t.Errorf("Update tried %d swaps, want retries", kv.swaps)
		}
	})
	t.Run("indeterminate writes are not retried", func(t *testing.T) {
		kv := &conflictKV{casErr: fmt.Errorf("%w: %w", skiff.ErrIndeterminate, skiff.ErrRevisionMismatch)}
		_, _, err := skiff.NewTyped[counter](kv, nil).Update(testCtx(t), "k", inc)
		if !errors.Is(err, skiff.ErrIndeterminate) || kv.swaps != 1 {
			t.Errorf("Update = %v after %d swaps, want ErrIndeterminate after 1", err, kv.swaps)
		}
	})
}

// fixedCodec stores a uint64 as 8 big-endian bytes.
type fixedCodec struct{}

func (fixedCodec) Marshal(v any) ([]byte, error) {
	n, ok := v.(uint64)
	if !ok {
		return nil, fmt.Errorf("fixedCodec: cannot encode %T", v)
	}
	return binary.BigEndian.AppendUint64(nil, n), nil
}

func (fixedCodec) Unmarshal(data []byte, v any) error {
	p, ok := v.(*uint64)
	if !ok {
		return fmt.Errorf("fixedCodec: cannot decode into %T", v)
	}
	if len(data) != 8 {
		return fmt.Errorf("fixedCodec: %d bytes, want 8", len(data))
	}
	*p = binary.BigEndian.Uint64(data)
	return nil
}

func TestCodecCustom(t *testing.T) {
	c := skifftest.NewCluster(t, 1, nil)
	ctx := testCtx(t)
	node := c.Node(0)
	nums := skiff.NewTyped[uint64](node, fixedCodec{})

	if _, err := nums.Put(ctx, "nums/a", 0x0102030405060708); err != nil {
		t.Fatal(err)
	}
	raw, err := node.Get(ctx, "nums/a")
	if want := []byte{1, 2, 3, 4, 5, 6, 7, 8}; err != nil || !slices.Equal(raw.Value, want) {
		t.Fatalf("raw Get(%q) = %v, %v, want bytes %v", "nums/a", raw, err, want)
	}
	got, _, err := nums.Update(ctx, "nums/a", func(old uint64, _ bool) (uint64, error) { return old + 1, nil })
	if err != nil || got != 0x0102030405060709 {
		t.Fatalf("Update(%q) = %#x, %v, want %#x", "nums/a", got, err, uint64(0x0102030405060709))
	}

	rev, err := node.Put(ctx, "nums/short", []byte{1, 2})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = nums.Get(ctx, "nums/short")
	wantDecodeError(t, `Get("nums/short")`, err, "nums/short", rev)
	if !strings.Contains(err.Error(), "2 bytes, want 8") {
		t.Errorf(`Get("nums/short") error %q lacks the codec's message`, err)
	}
}

func ExampleTyped() {
	dir, err := os.MkdirTemp("", "skiff-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	cfg := skiff.DefaultConfig()
	cfg.Dir = dir
	cfg.BindAddr = "127.0.0.1:0"
	cfg.HeartbeatTimeout = 50 * time.Millisecond
	cfg.ElectionTimeout = 50 * time.Millisecond
	cfg.LeaderLeaseTimeout = 50 * time.Millisecond
	cfg.Logger = slog.New(slog.DiscardHandler)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	node, err := skiff.Open(ctx, cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer node.Close()
	if _, err := node.WaitForLeader(ctx); err != nil {
		log.Fatal(err)
	}

	type User struct {
		Name   string
		Roles  []string
		Logins int
	}
	// Values are stored as JSON; any KV works, the network client too.
	users := skiff.NewTyped[User](node, nil)

	if _, err := users.Put(ctx, "users/alice", User{Name: "Alice", Roles: []string{"admin"}}); err != nil {
		log.Fatal(err)
	}
	alice, kv, err := users.Get(ctx, "users/alice")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%+v (version %d)\n", alice, kv.Version)

	// Update retries its read-modify-write until no concurrent writer
	// interferes, so counts are never lost.
	alice, _, err = users.Update(ctx, "users/alice", func(u User, exists bool) (User, error) {
		u.Logins++
		return u, nil
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%+v\n", alice)
	// Output:
	// {Name:Alice Roles:[admin] Logins:0} (version 1)
	// {Name:Alice Roles:[admin] Logins:1}
}
