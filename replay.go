package skiff

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// appliedFile records an index this node's state machine had applied.
// Raft does not keep the commit index on disk: a restarted node applies
// nothing past its snapshot until a leader tells it what is committed.
// Every entry up to an index once applied is committed, so a restart
// replays the log up to the recorded index at once, and the node serves
// that state (stale reads, watches) before it hears from a leader, even
// when there is none.
const appliedFile = "applied-index"

// replayBatch is how many entries replayCommitted applies per store
// transaction.
const replayBatch = 256

// readApplied returns the recorded applied index, or 0 when there is none.
func readApplied(dir string) (uint64, error) {
	path := filepath.Join(dir, appliedFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read applied index: %w", err)
	}
	idx, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %s: %w", ErrCorrupt, path, err)
	}
	return idx, nil
}

// recordApplied writes the applied index to appliedFile when it changed
// since the last call. The file may lag the state but never leads it:
// the index is read before it is written.
func (n *Node) recordApplied() {
	idx := n.fsm.appliedIndex()
	if idx == n.recorded {
		return
	}
	if err := writeFileAtomic(filepath.Join(n.cfg.Dir, appliedFile), []byte(strconv.FormatUint(idx, 10)+"\n")); err != nil {
		n.log.Warn("recording the applied index failed", "err", err)
		return
	}
	n.recorded = idx
}

// replayCommitted applies the log entries between the restored snapshot
// and the recorded applied index. Raft hands them over again once it
// learns the commit index, and the state machine passes over the ones it
// already reflects (see fsm.ApplyBatch).
//
// It reads the whole log past the snapshot and returns it as a scanCache,
// because Raft reads all of it once more when it starts.
func (n *Node) replayCommitted() (*scanCache, error) {
	scan := &scanCache{LogStore: n.logs}
	upTo, err := readApplied(n.cfg.Dir)
	if err != nil {
		return nil, err
	}
	n.recorded = upTo
	last, err := n.logs.LastIndex()
	if err != nil {
		return nil, fmt.Errorf("read log: %w", err)
	}
	// Entries up to the snapshot's index are in it, or were replaced by
	// it (a restored backup): replay starts after both.
	from := max(n.fsm.appliedIndex(), n.fsm.fed.Load()) + 1
	if last < from {
		return scan, nil
	}
	start := time.Now()
	var (
		batch  = make([]*raft.Log, 0, replayBatch)
		cached []*raft.Log
		size   int
	)
	flush := func() {
		if len(batch) > 0 {
			n.fsm.apply(batch, make([]any, len(batch)))
			batch = batch[:0]
		}
	}
	for idx := from; idx <= last; idx++ {
		l := new(raft.Log)
		if err := n.logs.GetLog(idx, l); err != nil {
			// Raft will find out what is wrong with the log; up to here
			// the state is right.
			n.log.Warn("log replay stopped early", "index", idx, "err", err)
			break
		}
		if size += len(l.Data); size <= scanCacheBytes {
			cached = append(cached, l)
		} else if idx > upTo {
			break
		}
		// Raft passes only these kinds to the state machine; the applied
		// index only ever names one of them.
		if idx > upTo || (l.Type != raft.LogCommand && l.Type != raft.LogConfiguration) {
			continue
		}
		if batch = append(batch, l); len(batch) == replayBatch {
			flush()
		}
	}
	flush()
	scan.first = from
	scan.entries.Store(&cached)
	n.log.Info("replayed committed log entries", "from", from, "to", n.fsm.appliedIndex(), "took", time.Since(start))
	return scan, nil
}

// scanCacheBytes bounds the log data a scanCache holds.
const scanCacheBytes = 64 << 20

// scanCache serves Raft's scan of the log when it starts (it reads every
// entry past the snapshot, looking for configuration changes) from the
// entries replayCommitted has read already. The first write to the log,
// or drop, ends it.
type scanCache struct {
	raft.LogStore
	first   uint64
	entries atomic.Pointer[[]*raft.Log]
}

func (c *scanCache) GetLog(idx uint64, l *raft.Log) error {
	if p := c.entries.Load(); p != nil && idx >= c.first && idx-c.first < uint64(len(*p)) {
		*l = *(*p)[idx-c.first]
		return nil
	}
	return c.LogStore.GetLog(idx, l)
}

func (c *scanCache) StoreLog(l *raft.Log) error {
	c.drop()
	return c.LogStore.StoreLog(l)
}

func (c *scanCache) StoreLogs(ls []*raft.Log) error {
	c.drop()
	return c.LogStore.StoreLogs(ls)
}

func (c *scanCache) DeleteRange(lo, hi uint64) error {
	c.drop()
	return c.LogStore.DeleteRange(lo, hi)
}

// drop releases the cached entries; from then on every read goes to the
// log store.
func (c *scanCache) drop() { c.entries.Store(nil) }
