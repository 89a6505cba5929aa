// Package bufpool is a gRPC buffer pool that does not zero the buffers it
// hands out. gRPC's default pool clears every buffer it reuses, and rounds
// a Raft append of a few dozen KiB up to a 1 MiB buffer, so clearing cost
// more CPU than anything else on the write path. gRPC overwrites every
// byte it reads into a buffer before using it, so the zeroing buys
// nothing here.
package bufpool

import (
	"math/bits"
	"sync"

	"google.golang.org/grpc/mem"
)

// maxTier is the largest pooled size, 2^maxTier bytes; larger buffers are
// allocated and dropped.
const maxTier = 22

// Pool keeps buffers in power-of-two size classes.
type Pool struct {
	tiers [maxTier + 1]sync.Pool
}

var _ mem.BufferPool = (*Pool)(nil)

// Shared is the pool every connection of the process uses.
var Shared = &Pool{}

// Get returns a buffer of length n, with arbitrary contents.
func (p *Pool) Get(n int) *[]byte {
	tier := bits.Len(uint(max(n, 1) - 1))
	if tier > maxTier {
		b := make([]byte, n)
		return &b
	}
	if b, ok := p.tiers[tier].Get().(*[]byte); ok {
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, 1<<tier)
	return &b
}

// Put returns a buffer obtained from Get.
func (p *Pool) Put(b *[]byte) {
	c := cap(*b)
	if c == 0 || c&(c-1) != 0 {
		return // not one of ours
	}
	if tier := bits.Len(uint(c)) - 1; tier <= maxTier {
		p.tiers[tier].Put(b)
	}
}
