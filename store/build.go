package store

// Decoding a snapshot splits its work between two goroutines: the caller's
// reads, checksums and copies entries into the arenas, and a builder
// goroutine inserts them into the tree, which is the larger half. Entries go
// across in batches, recycled, so the handoff costs little per entry. A
// snapshot that fits in one batch is built without the goroutine.
const (
	batchLen      = 1024
	pipelineDepth = 4                 // full batches queued for the builder
	maxBatches    = pipelineDepth + 2 // queued, being inserted, being filled
)

type pipeline struct {
	t           *tree
	full, empty chan []Entry // nil until the builder starts
	done        chan struct{}
	batches     int // allocated so far
}

// newPipeline returns a pipeline inserting into t, which nobody else may
// touch until finish returns, and the first batch to fill. count, the
// untrusted number of entries to come, only sizes that batch.
func newPipeline(t *tree, count uint64) (*pipeline, []Entry) {
	return &pipeline{t: t, batches: 1}, make([]Entry, 0, min(count, batchLen))
}

// next hands a full batch to the builder and returns an empty one.
func (p *pipeline) next(batch []Entry) []Entry {
	if p.full == nil {
		p.full = make(chan []Entry, pipelineDepth)
		// empty can hold every batch, so the builder never blocks on it.
		p.empty = make(chan []Entry, maxBatches)
		p.done = make(chan struct{})
		go p.run()
	}
	p.full <- batch
	select {
	case b := <-p.empty:
		return b
	default:
	}
	if p.batches < maxBatches {
		p.batches++
		return make([]Entry, 0, batchLen)
	}
	return <-p.empty
}

// finish inserts the last batch and returns when every entry is in the
// tree. It must be called, also on error, so that the builder goroutine
// ends.
func (p *pipeline) finish(batch []Entry) {
	if p.full == nil {
		f := filler{t: p.t}
		f.addAll(batch)
		f.flush()
		return
	}
	p.full <- batch
	close(p.full)
	<-p.done
}

func (p *pipeline) run() {
	defer close(p.done)
	f := filler{t: p.t}
	for batch := range p.full {
		f.addAll(batch)
		clear(batch) // a spare batch must not keep arena blocks alive
		p.empty <- batch[:0]
	}
	f.flush()
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
	held    [fillLag]item // ring buffer of held-back items
	head, n int
	vals    []entryVal // unused rest of the current block of entry values
}

// fillLag must exceed the entries a rightmost leaf can span, about
// 2*(2*degree-1) at one entry in two.
const fillLag = 4 * degree

func (f *filler) addAll(batch []Entry) {
	for i := range batch {
		f.add(batch[i])
	}
}

func (f *filler) add(e Entry) {
	if len(f.vals) == 0 {
		f.vals = make([]entryVal, valBlock) // one allocation per block, not per entry
	}
	v := &f.vals[0]
	f.vals = f.vals[1:]
	*v = entryVal{value: e.Value, create: e.CreateRevision, mod: e.ModRevision, version: e.Version}
	it := item{key: e.Key, v: v}
	f.odd = !f.odd
	if !f.odd {
		f.t.ReplaceOrInsert(it)
		return
	}
	if f.n == fillLag {
		f.t.ReplaceOrInsert(f.held[f.head])
		f.held[f.head] = it
		f.head = (f.head + 1) % fillLag
		return
	}
	f.held[(f.head+f.n)%fillLag] = it
	f.n++
}

// valBlock is how many entry values one allocation holds while a view is
// decoded. A block stays in memory while any of its entries is live.
const valBlock = 1024

// flush inserts the held-back entries.
func (f *filler) flush() {
	for ; f.n > 0; f.n-- {
		f.t.ReplaceOrInsert(f.held[f.head])
		f.held[f.head] = item{}
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
