package skiff_test

import (
	"bytes"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/skiffkv/skiff"
	skiffpb "github.com/skiffkv/skiff/proto"
	"github.com/skiffkv/skiff/skifftest"
	"google.golang.org/protobuf/proto"
)

// A 40 KB Batch of 1024 Gets over 1 MiB values used to make the node
// build a 1 GiB answer (and fail to send it). The node now stops running
// Gets once the answer holds 4 MiB; the others come back NOT_RUN, with
// nothing read for them.
func TestWireBatchAnswerIsBounded(t *testing.T) {
	n := openNode(t, testConfig(t.TempDir()))
	putMany(t, n, "big", 8, maxValue)
	req := &skiffpb.BatchRequest{}
	for i := 0; i < 1024; i++ {
		req.Ops = append(req.Ops, &skiffpb.Op{Op: &skiffpb.Op_Get{Get: &skiffpb.GetRequest{Key: fmt.Sprintf("big/%05d", i%8)}}})
	}
	resp, err := skiffpb.NewKVClient(rawConn(t, n.Addr())).Batch(testCtx(t), req, bigCall)
	if err != nil {
		t.Fatalf("Batch of 1024 Gets: %v", err)
	}
	if len(resp.Results) != 1024 {
		t.Fatalf("Batch answered %d results for 1024 Gets", len(resp.Results))
	}
	ran := 0
	for i, r := range resp.Results {
		switch {
		case r.GetGet() != nil && i == ran:
			if !bytes.Equal(r.GetGet().GetKv().GetValue(), maxValue(i%8)) {
				t.Fatalf("Get %d: wrong value", i)
			}
			ran++
		case r.GetError() == nil || !slices.Equal(r.GetError().Reasons, []string{"NOT_RUN"}):
			t.Fatalf("result %d = %v, want a value (only before any NOT_RUN) or NOT_RUN", i, r)
		}
	}
	size := proto.Size(resp)
	t.Logf("%d Gets ran, answer %d bytes", ran, size)
	if ran == 0 || size > 4<<20+skiff.DefaultMaxValueSize+64<<10 {
		t.Fatalf("%d Gets ran, answer %d bytes; want at least one and at most about 4 MiB plus one value", ran, size)
	}
}

// 100 concurrent Gets of 1 MiB values through the client all succeed: the
// client sends the Gets a node did not run again. The client used to send
// them in one batch, whose 100 MiB answer no node could send, and blamed
// the caller (ErrInvalidArgument).
func TestClientGetsOfMaximalValues(t *testing.T) {
	if testing.Short() {
		t.Skip("moves about 100 MiB through one node; runs without -short")
	}
	c := skifftest.NewCluster(t, 1, nil)
	putMany(t, c.Node(0), "big", 100, maxValue)
	cl, ctx := c.Client(nil), testCtx(t)
	concurrently(t, 100, func(i int) error {
		kv, err := cl.Get(ctx, fmt.Sprintf("big/%05d", i))
		if err == nil && !bytes.Equal(kv.Value, maxValue(i)) {
			err = fmt.Errorf("%d bytes starting %x", len(kv.Value), kv.Value[:min(len(kv.Value), 4)])
		}
		return err
	})
}

// 100 concurrent Puts of 1 MiB values through the client all succeed: a
// batch holds at most 4 MiB of keys and values. The client used to put
// up to 128 operations in a batch whatever their size, and failed its own
// 100 MiB message with ErrInvalidArgument.
func TestClientPutsOfMaximalValues(t *testing.T) {
	if testing.Short() {
		t.Skip("moves about 100 MiB through one node; runs without -short")
	}
	c := skifftest.NewCluster(t, 1, nil)
	cl, ctx := c.Client(nil), testCtx(t)
	concurrently(t, 100, func(i int) error {
		_, err := cl.Put(ctx, fmt.Sprintf("big/%05d", i), maxValue(i))
		return err
	})
	for i := 0; i < 100; i++ {
		kv, err := c.Node(0).Get(ctx, fmt.Sprintf("big/%05d", i))
		if err != nil || !bytes.Equal(kv.Value, maxValue(i)) {
			t.Fatalf("Get(big/%05d) after the Puts: %v", i, err)
		}
	}
}

// concurrently runs f(0) … f(count-1) at once and fails the test with the
// first error.
func concurrently(t *testing.T, count int, f func(i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, count)
	for i := 0; i < count; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(i); err != nil {
				errs <- fmt.Errorf("call %d: %w", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
