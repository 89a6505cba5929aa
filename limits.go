package skiff

import (
	"math"

	"github.com/skiffkv/skiff/store"
)

// Size limits that hold for every node and client, whatever their Config.
//
// A message's size limit is fixed rather than derived from a node's own
// key and value limits, so that nodes configured differently still accept
// each other's messages: the largest entry any node may write fits every
// node's limit. Everything a node builds for the wire is bounded by a byte
// budget below that limit (a page of a listing, a batch's answer, a watch
// message, a Raft append), so no answer grows with the data it reads.
const (
	// maxKeySizeLimit and maxValueSizeLimit bound Config.MaxKeySize and
	// Config.MaxValueSize.
	maxKeySizeLimit   = 64 << 10
	maxValueSizeLimit = 32 << 20

	// wireMessageLimit is the largest gRPC message a node or a client sends
	// or accepts: one maximal change with its previous value (a watch event
	// with WithPrevValue) and the framing around it.
	wireMessageLimit = 2*(maxValueSizeLimit+maxKeySizeLimit) + 1<<20

	// pageBytes is the byte budget of one answer: a page of a listing, the
	// results of a batch, one watch message. A page ends before the entry
	// that would take it past the budget; its first entry is always
	// included, so one maximal entry still fits.
	pageBytes = 4 << 20

	// appendBytes is the byte budget of one Raft AppendEntries call; see
	// boundedTransport.
	appendBytes = 8 << 20

	// entryOverhead is counted for each entry on top of its key and value
	// bytes: revisions, framing and protobuf tags.
	entryOverhead = 64
)

// entrySize is what an entry adds to an answer, near enough.
func entrySize(e store.Entry) int { return len(e.Key) + len(e.Value) + entryOverhead }

// streamsForCalls is how many streams a connection has for calls on top
// of MaxWatches watches.
const streamsForCalls = 1024

// maxStreams is the node's MaxConcurrentStreams: the streams one client
// connection may have open at once, each costing the node a goroutine and
// stream state; gRPC's default is unbounded. Every watch holds a stream
// for its life, and a Client opens all its watches to a node on one
// connection, so the bound is MaxWatches plus room for calls: a client's
// watches meet ErrTooManyWatches before they use up its connection, and
// its calls always have streams (past the bound, new streams wait for one
// to end rather than fail).
func maxStreams(maxWatches int) uint32 {
	return uint32(min(maxWatches, math.MaxUint32-streamsForCalls) + streamsForCalls)
}
