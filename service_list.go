package skiff

import (
	"context"
	"fmt"

	skiffpb "github.com/skiffkv/skiff/proto"
	"github.com/skiffkv/skiff/store"
)

// Listings over the network are served in pages, unlike Node.List, which
// returns everything asked for: an answer must fit in one message, and a
// node must not build an answer as large as its state because a small
// request asked. A page holds at most the request's limit of entries, or
// listPageSize when it gives none, and ends before the entry that would
// take it past pageBytes (its first entry always goes, so one maximal
// entry still fits). A page that ends with more pins its view (pins.go),
// so the listing's continuation reads the same state.

// listPageSize is the page size of a listing whose request gives no limit.
const listPageSize = 1000

// listing is what the three listings share: where the page starts, how
// many entries it may hold and which view it reads.
type listing struct {
	view  *store.View
	gen   uint64 // history generation of view, for its pin
	after string
	limit int
}

// startListing validates a page request and finds its view: the pinned
// one for a continuation (revision set), a new one otherwise. Each page
// counts as a read of kind.
func (s *service) startListing(ctx context.Context, kind string, after string, limit int64, revision uint64, o *skiffpb.ReadOptions) (_ *listing, err error) {
	defer s.n.meter().read(kind, &err)
	if limit < 0 || limit > 1<<31 {
		return nil, fmt.Errorf("%w: limit %d", ErrInvalidArgument, limit)
	}
	l := &listing{after: after, limit: int(limit)}
	if l.limit == 0 {
		l.limit = listPageSize
	}
	n := s.n
	if n.isClosed() {
		return nil, ErrClosed
	}
	// The generation is read before the view, so that a state replaced in
	// between is pinned under the older generation and never answers.
	l.gen = n.hist.generation()
	if revision != 0 {
		l.view, err = n.pins.get(revision, l.gen)
	} else {
		l.view, err = n.view(ctx, o.GetStale())
	}
	return l, err
}

// fits reports whether an entry of size bytes still fits in a page that
// holds count entries of used bytes.
func (l *listing) fits(count, used, size int) bool {
	return count < l.limit && (count == 0 || used+size <= pageBytes)
}

// finish pins the view behind a page that has more to come.
func (s *service) finish(l *listing, more bool) {
	if more {
		s.n.pins.pin(l.view, l.gen)
	}
}

func (s *service) List(ctx context.Context, req *skiffpb.ListRequest) (*skiffpb.ListResponse, error) {
	prefix, err := normalizePrefix(req.Prefix, s.n.cfg.MaxKeySize)
	if err != nil {
		return nil, s.status(err)
	}
	l, err := s.startListing(ctx, readList, req.After, req.Limit, req.Revision, req.Options)
	if err != nil {
		return nil, s.status(err)
	}
	resp := &skiffpb.ListResponse{Revision: l.view.Revision()}
	used := 0
	l.view.Range(prefix, l.after, func(e store.Entry) bool {
		kv := entryToPB(e)
		if req.KeysOnly {
			kv.Value = nil
		}
		size := len(kv.Key) + len(kv.Value) + entryOverhead
		if !l.fits(len(resp.Kvs), used, size) {
			resp.More = true
			return false
		}
		resp.Kvs = append(resp.Kvs, kv)
		used += size
		return true
	})
	s.finish(l, resp.More)
	return resp, nil
}

func (s *service) Children(ctx context.Context, req *skiffpb.ChildrenRequest) (*skiffpb.ChildrenResponse, error) {
	prefix, err := normalizePrefix(req.Prefix, s.n.cfg.MaxKeySize)
	if err != nil {
		return nil, s.status(err)
	}
	l, err := s.startListing(ctx, readChildren, req.After, req.Limit, req.Revision, req.Options)
	if err != nil {
		return nil, s.status(err)
	}
	resp := &skiffpb.ChildrenResponse{Revision: l.view.Revision()}
	used := 0
	l.view.EachChild(prefix, l.after, func(c store.Child) bool {
		size := len(c.Name) + entryOverhead
		if !l.fits(len(resp.Children), used, size) {
			resp.More = true
			return false
		}
		resp.Children = append(resp.Children, &skiffpb.Child{Name: c.Name, IsKey: c.IsKey, HasChildren: c.HasChildren})
		used += size
		return true
	})
	s.finish(l, resp.More)
	return resp, nil
}

func (s *service) Prefixes(ctx context.Context, req *skiffpb.PrefixesRequest) (*skiffpb.PrefixesResponse, error) {
	l, err := s.startListing(ctx, readPrefixes, req.After, req.Limit, req.Revision, req.Options)
	if err != nil {
		return nil, s.status(err)
	}
	resp := &skiffpb.PrefixesResponse{Revision: l.view.Revision()}
	used := 0
	l.view.EachPrefix(l.after, func(p string) bool {
		size := len(p) + entryOverhead
		if !l.fits(len(resp.Prefixes), used, size) {
			resp.More = true
			return false
		}
		resp.Prefixes = append(resp.Prefixes, p)
		used += size
		return true
	})
	s.finish(l, resp.More)
	return resp, nil
}
