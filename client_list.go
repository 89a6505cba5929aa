package skiff

import (
	"context"
	"fmt"

	skiffpb "github.com/skiffkv/skiff/proto"
	"google.golang.org/grpc"
)

// A node answers a listing in pages bounded by count and bytes
// (service_list.go), and the Client puts the pages back together, so that
// List, Children and Prefixes return what Node's do: everything asked
// for, in order, from one revision, without duplicates.
//
// The first page goes to any suitable node, as any read does; the node
// pins the state it read, and every later page asks the same node for the
// same revision, continuing after the last name received. If that node
// refuses (it dropped the pin, or it went away), the listing starts again
// from its first page, on whichever node answers, at most maxListRestarts
// times. Each page gets the caller's deadline, or the Client's call
// timeout when there is none.

// maxListRestarts bounds how often a listing starts again after a
// continuation was refused; a node that keeps dropping pins (more than
// maxPins listings at once) must not keep a caller busy for ever.
const maxListRestarts = 3

// listPage is one page of a listing of T.
type listPage[T any] struct {
	items []T
	more  bool
	rev   uint64
	last  string // the name the next page starts after
}

// fetchPage asks cc for the page after the name after, of at most limit
// items (0: the node's page size), at revision rev (0: a new listing).
type fetchPage[T any] func(ctx context.Context, cc *grpc.ClientConn, after string, limit int, rev uint64) (listPage[T], error)

// testHookListPage, when set, is called after each page a listing
// receives, with the page's number in the current attempt (0 is a first
// page). Tests use it to act between pages.
var testHookListPage func(page int)

// listAll gathers up to limit items (0: all) of a listing starting after
// the name after.
func listAll[T any](ctx context.Context, c *Client, stale bool, after string, limit int, fetch fetchPage[T]) (listPage[T], error) {
	for restarts := 0; ; restarts++ {
		res, continued, err := listOnce(ctx, c, stale, after, limit, fetch)
		if err == nil || !continued || ctx.Err() != nil {
			return res, err
		}
		if restarts == maxListRestarts {
			return res, fmt.Errorf("%w (the listing was started %d times)", err, maxListRestarts+1)
		}
	}
}

// listOnce reads a listing from its first page. continued reports that
// the error came from a continuation, so starting again may succeed.
func listOnce[T any](ctx context.Context, c *Client, stale bool, after string, limit int, fetch fetchPage[T]) (res listPage[T], continued bool, err error) {
	var addr string
	err = c.read(ctx, stale, func(ctx context.Context, a string, cc *grpc.ClientConn) error {
		var err error
		res, err = fetch(ctx, cc, after, limit, 0)
		addr = a
		return err
	})
	if err != nil {
		return res, false, err
	}
	for page := 0; ; page++ {
		if testHookListPage != nil {
			testHookListPage(page)
		}
		if !res.more || limit > 0 && len(res.items) >= limit {
			return res, false, nil
		}
		var p listPage[T]
		err := c.readAt(ctx, addr, func(ctx context.Context, cc *grpc.ClientConn) error {
			var err error
			p, err = fetch(ctx, cc, res.last, max(limit-len(res.items), 0), res.rev)
			return err
		})
		switch {
		case err != nil:
		case p.rev != res.rev: // a node that does not know continuations
			err = fmt.Errorf("%w: %s answered a listing at revision %d with revision %d", ErrUnavailable, addr, res.rev, p.rev)
		case p.more && len(p.items) == 0:
			err = fmt.Errorf("%w: %s answered an empty page with more to come", ErrUnavailable, addr)
		}
		if err != nil {
			return res, true, err
		}
		res.items = append(res.items, p.items...)
		res.more, res.last = p.more, p.last
	}
}

// readAt runs call on the node at addr and nowhere else: a listing's
// continuation must reach the node that pinned its state.
func (c *Client) readAt(ctx context.Context, addr string, call func(context.Context, *grpc.ClientConn) error) error {
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	cc, err := c.conn(addr)
	if err != nil {
		return err
	}
	if !ready(ctx, cc) {
		return fmt.Errorf("%w: %s is unreachable", ErrUnavailable, addr)
	}
	return fromStatus(call(ctx, cc))
}

// List returns the keys below prefix, as Node.List does.
func (c *Client) List(ctx context.Context, prefix string, opts ...ReadOption) (*ListResult, error) {
	o, ro, err := c.readOptions(opts)
	if err != nil {
		return nil, err
	}
	res, err := listAll(ctx, c, o.stale, o.after, o.limit,
		func(ctx context.Context, cc *grpc.ClientConn, after string, limit int, rev uint64) (listPage[KeyValue], error) {
			resp, err := skiffpb.NewKVClient(cc).List(ctx, &skiffpb.ListRequest{Prefix: prefix, After: after,
				Limit: int64(limit), KeysOnly: o.keysOnly, Options: ro, Revision: rev})
			if err != nil {
				return listPage[KeyValue]{}, err
			}
			p := listPage[KeyValue]{more: resp.More, rev: resp.Revision, items: make([]KeyValue, len(resp.Kvs))}
			for i, kv := range resp.Kvs {
				p.items[i] = *kvFromPB(kv)
				if o.keysOnly {
					p.items[i].Value = nil
				}
				p.last = kv.Key
			}
			return p, nil
		})
	if err != nil {
		return nil, err
	}
	return &ListResult{KVs: res.items, More: res.more, Revision: res.rev}, nil
}

// Children lists the immediate children of prefix, as Node.Children does.
func (c *Client) Children(ctx context.Context, prefix string, opts ...ReadOption) ([]Child, error) {
	o, ro, err := c.readOptions(opts)
	if err != nil {
		return nil, err
	}
	res, err := listAll(ctx, c, o.stale, o.after, o.limit,
		func(ctx context.Context, cc *grpc.ClientConn, after string, limit int, rev uint64) (listPage[Child], error) {
			resp, err := skiffpb.NewKVClient(cc).Children(ctx, &skiffpb.ChildrenRequest{Prefix: prefix, After: after,
				Limit: int64(limit), Options: ro, Revision: rev})
			if err != nil {
				return listPage[Child]{}, err
			}
			p := listPage[Child]{more: resp.More, rev: resp.Revision, items: make([]Child, len(resp.Children))}
			for i, ch := range resp.Children {
				p.items[i] = Child{Name: ch.Name, IsKey: ch.IsKey, HasChildren: ch.HasChildren}
				p.last = ch.Name
			}
			return p, nil
		})
	if err != nil {
		return nil, err
	}
	return res.items, nil
}

// Prefixes returns the top-level namespaces, as Node.Prefixes does (which
// takes no limit: every namespace is returned).
func (c *Client) Prefixes(ctx context.Context, opts ...ReadOption) ([]string, error) {
	o, ro, err := c.readOptions(opts)
	if err != nil {
		return nil, err
	}
	res, err := listAll(ctx, c, o.stale, "", 0,
		func(ctx context.Context, cc *grpc.ClientConn, after string, limit int, rev uint64) (listPage[string], error) {
			resp, err := skiffpb.NewKVClient(cc).Prefixes(ctx, &skiffpb.PrefixesRequest{After: after,
				Limit: int64(limit), Options: ro, Revision: rev})
			if err != nil {
				return listPage[string]{}, err
			}
			p := listPage[string]{more: resp.More, rev: resp.Revision, items: resp.Prefixes}
			if len(resp.Prefixes) > 0 {
				p.last = resp.Prefixes[len(resp.Prefixes)-1]
			}
			return p, nil
		})
	if err != nil {
		return nil, err
	}
	return res.items, nil
}
