package skiff

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	skiffpb "github.com/skiffkv/skiff/proto"
	"google.golang.org/grpc"
)

// Client talks to a skiff cluster over the network. It implements KV with
// the same behaviour and errors as an embedded Node, plus membership.
//
// A Client keeps a connection to each node it knows, learns which node
// leads from the cluster's answers and sends writes and linearizable reads
// straight to it, and moves to another node when one fails. It retries
// reads freely, and writes only when the write certainly did not take
// effect; a write whose outcome is unknown fails with ErrIndeterminate and
// is never repeated behind the caller's back.
//
// All methods are safe for concurrent use. Every call takes its deadline
// from its context, or the Client's call timeout when the context has
// none.
type Client struct {
	opts  clientOptions
	seeds []string
	pool  *connPool

	route route

	mu     sync.Mutex
	closed bool

	batchers [3]*batcher // by batchKind
}

var _ KV = (*Client)(nil)

type clientOptions struct {
	tls         *tls.Config
	dialer      func(context.Context, string) (net.Conn, error)
	dialTimeout time.Duration
	callTimeout time.Duration
	stale       bool
	maxMsg      int
	token       string
}

// ClientOption configures Dial.
type ClientOption func(*clientOptions)

// WithTLS dials the nodes with TLS (set Certificates for mutual TLS).
func WithTLS(cfg *tls.Config) ClientOption { return func(o *clientOptions) { o.tls = cfg } }

// WithToken authenticates the client with a bearer token, which the nodes
// map to a role (Config.ClientTokens). Without TLS the token crosses the
// network in clear.
func WithToken(token string) ClientOption { return func(o *clientOptions) { o.token = token } }

// WithDialer replaces the network dialer, for example to reach a
// skifftest cluster.
func WithDialer(d func(ctx context.Context, addr string) (net.Conn, error)) ClientOption {
	return func(o *clientOptions) { o.dialer = d }
}

// WithDialTimeout bounds how long Dial waits to reach a first node
// (default 5s; Dial's context may end it sooner).
func WithDialTimeout(d time.Duration) ClientOption {
	return func(o *clientOptions) { o.dialTimeout = d }
}

// WithCallTimeout is the deadline of calls whose context has none (default
// 10s).
func WithCallTimeout(d time.Duration) ClientOption {
	return func(o *clientOptions) { o.callTimeout = d }
}

// WithStaleReads makes every read stale, as if each passed Stale(): served
// by any node from its local state, without a round trip to the leader.
func WithStaleReads() ClientOption { return func(o *clientOptions) { o.stale = true } }

// WithMaxMessageSize sets the largest message the client sends or
// receives (default 65 MiB: one maximal key and value, which every node
// accepts too). Lowering it makes calls with values near the limit fail.
func WithMaxMessageSize(n int) ClientOption { return func(o *clientOptions) { o.maxMsg = n } }

// Dial connects to a cluster through any of addrs (more addresses give
// more places to fail over to; nodes found later as leaders are added).
// It waits until a node answers, trying every address again while none
// does, so a program may start before its cluster; it fails with an error
// wrapping ErrUnavailable when none answers within the dial timeout (and
// with ErrPermissionDenied at once when the nodes refuse its credentials).
func Dial(ctx context.Context, addrs []string, opts ...ClientOption) (*Client, error) {
	o := clientOptions{dialTimeout: 5 * time.Second, callTimeout: defaultTimeout, maxMsg: wireMessageLimit}
	for _, opt := range opts {
		opt(&o)
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("%w: Dial needs at least one address", ErrInvalidArgument)
	}
	dopts := dialOptions(o.tls, o.dialer, o.maxMsg)
	if o.token != "" {
		dopts = append(dopts, grpc.WithPerRPCCredentials(tokenCreds(o.token)))
	}
	c := &Client{opts: o, seeds: append([]string(nil), addrs...), pool: newConnPool(dopts)}
	for k := range c.batchers {
		c.batchers[k] = &batcher{c: c, kind: batchKind(k)}
	}
	ctx, cancel := context.WithTimeout(ctx, o.dialTimeout)
	defer cancel()
	if err := c.connect(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Close closes every connection. Calls in flight fail; later calls return
// ErrClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	return c.pool.close()
}

func (c *Client) conn(addr string) (*grpc.ClientConn, error) { return c.pool.get(addr) }

func (c *Client) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.opts.callTimeout)
}

// read runs a read on a node, moving to the next one while attempts fail
// for reasons that say nothing about the answer. Linearizable reads go to
// the leader first (it answers without a hop); stale reads to any node.
// call learns the node's address, for reads that must come back to it.
func (c *Client) read(ctx context.Context, stale bool, call func(ctx context.Context, addr string, cc *grpc.ClientConn) error) error {
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	return c.attempts(ctx, !stale, false, func(ctx context.Context, addr string, cc *grpc.ClientConn) (bool, error) {
		err := fromStatus(call(ctx, addr, cc))
		if err == nil {
			return true, nil
		}
		return ctx.Err() == nil && (notApplied(err) || errors.Is(err, ErrTimeout) || errors.Is(err, ErrClosed)), err
	})
}

func (c *Client) readOptions(opts []ReadOption) (readOptions, *skiffpb.ReadOptions, error) {
	o, err := collectReadOptions(opts)
	if err != nil {
		return o, nil, err
	}
	o.stale = o.stale || c.opts.stale
	return o, &skiffpb.ReadOptions{Stale: o.stale}, nil
}

// Put sets key to value and returns the revision of the write.
func (c *Client) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	return c.put(ctx, &skiffpb.PutRequest{Key: key, Value: value})
}

// Create sets key only if it does not exist; otherwise ErrExists.
func (c *Client) Create(ctx context.Context, key string, value []byte) (uint64, error) {
	return c.put(ctx, &skiffpb.PutRequest{Key: key, Value: value, Condition: &skiffpb.Condition{Kind: skiffpb.Condition_ABSENT}})
}

// CompareAndSwap sets key only if its ModRevision is modRevision;
// otherwise ErrRevisionMismatch.
func (c *Client) CompareAndSwap(ctx context.Context, key string, value []byte, modRevision uint64) (uint64, error) {
	return c.put(ctx, &skiffpb.PutRequest{Key: key, Value: value,
		Condition: &skiffpb.Condition{Kind: skiffpb.Condition_MOD_REVISION, ModRevision: modRevision}})
}

func (c *Client) put(ctx context.Context, req *skiffpb.PutRequest) (uint64, error) {
	res, err := c.batchOp(ctx, batchWrites, &skiffpb.Op{Op: &skiffpb.Op_Put{Put: req}})
	if err != nil {
		return 0, err
	}
	return res.GetPut().GetKv().GetModRevision(), nil
}

// Delete removes key. Deleting an absent key succeeds.
func (c *Client) Delete(ctx context.Context, key string) error {
	return c.del(ctx, &skiffpb.DeleteRequest{Key: key})
}

// DeleteIf removes key only if its ModRevision is modRevision; otherwise
// ErrRevisionMismatch.
func (c *Client) DeleteIf(ctx context.Context, key string, modRevision uint64) error {
	return c.del(ctx, &skiffpb.DeleteRequest{Key: key,
		Condition: &skiffpb.Condition{Kind: skiffpb.Condition_MOD_REVISION, ModRevision: modRevision}})
}

func (c *Client) del(ctx context.Context, req *skiffpb.DeleteRequest) error {
	_, err := c.batchOp(ctx, batchWrites, &skiffpb.Op{Op: &skiffpb.Op_Delete{Delete: req}})
	return err
}

// Get returns key's value and revisions, or ErrNotFound.
func (c *Client) Get(ctx context.Context, key string, opts ...ReadOption) (*KeyValue, error) {
	o, ro, err := c.readOptions(opts)
	if err != nil {
		return nil, err
	}
	kind := batchReads
	if o.stale {
		kind = batchStale
	}
	res, err := c.batchOp(ctx, kind, &skiffpb.Op{Op: &skiffpb.Op_Get{Get: &skiffpb.GetRequest{Key: key, Options: ro}}})
	if err != nil {
		return nil, err
	}
	return kvFromPB(res.GetGet().GetKv()), nil
}
