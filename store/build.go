package store

// Decoding a snapshot splits its work between two goroutines: the caller's
// reads, checksums and copies entries into the arena, and a builder
// goroutine inserts them into the tree, which is the larger half. Entries go
// across in batches, recycled, so the handoff costs little per entry.
const (
	batchLen      = 1024
	pipelineDepth = 4 // batches queued for the builder
)

type pipeline struct {
	full  chan []Entry
	empty chan []Entry
	done  chan struct{}
}

// startBuild starts a builder goroutine inserting into t, which nobody else
// may touch until finish returns.
func startBuild(t *tree) (*pipeline, []Entry) {
	p := &pipeline{
		full:  make(chan []Entry, pipelineDepth),
		empty: make(chan []Entry, pipelineDepth+2),
		done:  make(chan struct{}),
	}
	// pipelineDepth+2 batches circulate, the last one held by the caller;
	// empty can hold them all, so the builder never blocks returning one.
	for range pipelineDepth + 1 {
		p.empty <- make([]Entry, 0, batchLen)
	}
	go p.run(t)
	return p, make([]Entry, 0, batchLen)
}

// next hands a full batch to the builder and returns an empty one.
func (p *pipeline) next(batch []Entry) []Entry {
	p.full <- batch
	return <-p.empty
}

// finish hands over the last batch and waits until every entry is in the
// tree. It must be called, also on error, so the goroutine does not leak.
func (p *pipeline) finish(batch []Entry) {
	if len(batch) > 0 {
		p.full <- batch
	}
	close(p.full)
	<-p.done
}

func (p *pipeline) run(t *tree) {
	defer close(p.done)
	var b filler
	b.t = t
	for batch := range p.full {
		for i := range batch {
			b.add(batch[i])
		}
		clear(batch) // drop references to the arena from the spare batch
		p.empty <- batch[:0]
	}
	b.flush()
}

// filler inserts entries that arrive in ascending key order so that the
// tree's leaves end up full.
//
// btree splits a full node in the middle, so plain ascending insertion
// leaves every leaf but the last half empty: each is split once, when it is
// the rightmost, and never touched again. filler instead inserts every
// other entry at once and holds back the rest by fillLag entries, by which
// time the leaf they belong to has been split off; each of those leaves
// then takes exactly the held-back entries between its items, which brings
// it to 2*degree-1 items without splitting. This halves the memory of the
// leaves, where nearly all entries are, and needs only a fixed buffer. The
// result is a valid tree whatever the key distribution; only the fill
// depends on the scheme.
type filler struct {
	t       *tree
	odd     bool
	held    [fillLag]Entry // ring buffer of held-back entries
	head, n int
}

// fillLag must exceed the entries a rightmost leaf can span, about
// 2*(2*degree-1) at one entry in two.
const fillLag = 4 * degree

func (f *filler) add(e Entry) {
	f.odd = !f.odd
	if !f.odd {
		f.t.ReplaceOrInsert(e)
		return
	}
	if f.n == fillLag {
		f.t.ReplaceOrInsert(f.held[f.head])
		f.held[f.head] = e
		f.head = (f.head + 1) % fillLag
		return
	}
	f.held[(f.head+f.n)%fillLag] = e
	f.n++
}

// flush inserts the held-back entries.
func (f *filler) flush() {
	for ; f.n > 0; f.n-- {
		f.t.ReplaceOrInsert(f.held[f.head])
		f.held[f.head] = Entry{}
		f.head = (f.head + 1) % fillLag
	}
}

// arena hands out byte slices carved from large blocks, so a decoded view
// costs a few hundred allocations instead of two per entry. Blocks start
// small and double up to slabSize, so that small snapshots stay small.
// Keys and values use separate arenas: a tree search compares keys that
// are then packed together instead of one per value-sized stride, which
// makes the comparisons of the build, and of later lookups, cache-friendly.
type arena struct {
	free []byte // unused rest of the current block
	size int    // size of the current block
}

const minSlab = 4 << 10

// alloc returns n (<= maxSlabField) bytes with capacity n, so that
// appending to one never overwrites its neighbour.
func (a *arena) alloc(n int) []byte {
	if n > len(a.free) {
		a.size = min(max(2*a.size, minSlab), slabSize)
		a.free = make([]byte, max(a.size, n))
	}
	b := a.free[:n:n]
	a.free = a.free[n:]
	return b
}
