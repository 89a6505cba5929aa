package skiff_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/skiffkv/skiff"
	"github.com/skiffkv/skiff/skifftest"
)

// A write whose caller gave up while it waited for a node to reach was
// still sent afterwards, for as long as the batch it was in had time: its
// caller, told ErrIndeterminate, read the key, found nothing, and saw the
// write land later. (The fault suite's process tier found it: a final
// linearizable listing missed a write that every replica applied right
// after it.) A write is now sent only while its caller waits for it.
func TestAbandonedWriteIsNotSentLater(t *testing.T) {
	const maxSenders = 4 // the client's batches of writes in flight at once
	c := skifftest.NewCluster(t, 1, nil)
	cl := c.Client(nil)
	ctx := testCtx(t)
	if _, err := cl.Put(ctx, "warm", []byte("x")); err != nil {
		t.Fatal(err)
	}
	c.Stop(0)

	// Writes with a short deadline take every sender slot; the abandoned
	// ones queue behind them and go out in a batch, sent by a goroutine,
	// when those give up.
	var wg sync.WaitGroup
	for i := 0; ; i++ {
		if senders, _ := skiff.WriteQueue(cl); senders == maxSenders {
			break
		}
		if i == 1000 {
			t.Fatal("the blocking writes did not take every sender slot")
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			bctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			defer cancel()
			_, _ = cl.Put(bctx, fmt.Sprintf("blocker/%d", i), []byte("x"))
		}()
		eventually(t, time.Second, func() error {
			if senders, queued := skiff.WriteQueue(cl); senders < min(i+1, maxSenders) || queued > 0 {
				return fmt.Errorf("%d senders, %d queued", senders, queued)
			}
			return nil
		})
	}
	const n = 8
	gone := time.Now().Add(4 * time.Second) // the abandoned writes' deadline
	actx, abandon := context.WithDeadline(ctx, gone)
	errs := make(chan error, n)
	for i := range n {
		go func() {
			_, err := cl.Put(actx, fmt.Sprintf("abandoned/%d", i), []byte("x"))
			errs <- err
		}()
	}
	eventually(t, time.Second, func() error {
		if _, queued := skiff.WriteQueue(cl); queued < n {
			return fmt.Errorf("%d of %d abandoned writes queued", queued, n)
		}
		return nil
	})
	wg.Wait()
	eventually(t, 2*time.Second, func() error {
		if _, queued := skiff.WriteQueue(cl); queued > 0 {
			return fmt.Errorf("%d writes still queued", queued)
		}
		return nil
	})
	abandon()
	for range n {
		// Taken into a batch, so sent as far as the caller knows.
		if err := <-errs; !errors.Is(err, skiff.ErrIndeterminate) {
			t.Fatalf("abandoned Put: err = %v, want ErrIndeterminate", err)
		}
	}

	c.Restart(0)
	c.WaitForLeader()
	// Until well past the abandoned writes' deadline, none of them lands.
	for time.Now().Before(gone.Add(time.Second)) {
		res, err := cl.List(ctx, "abandoned/")
		if err == nil && len(res.KVs) > 0 {
			t.Fatalf("%d abandoned writes applied after their callers were told ErrIndeterminate, the first %q",
				len(res.KVs), res.KVs[0].Key)
		}
		time.Sleep(50 * time.Millisecond) // polling for something that must not happen
	}
}
