package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/skiffkv/skiff"
)

// testDialer, when set, replaces the network for the client verbs; tests
// set it to reach an in-memory skifftest cluster.
var testDialer func(ctx context.Context, addr string) (net.Conn, error)

// Deadlines of the client verbs when --timeout is 0.
const (
	defaultTimeout = 10 * time.Second
	backupTimeout  = time.Hour // a backup of gigabytes takes minutes
)

// withTimeout bounds the command by --timeout, or by def when it is 0
// (no bound when def is 0 too).
func (e *env) withTimeout(ctx context.Context, def time.Duration) (context.Context, context.CancelFunc) {
	d := e.common.timeout
	if d == 0 {
		d = def
	}
	if d <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// dial connects a client to --endpoints. The dial gives up within ctx's
// deadline (at most 5 s), so a verb against a dead cluster ends promptly
// with exit code 5.
func (e *env) dial(ctx context.Context) (*skiff.Client, error) {
	addrs := splitList(e.common.endpoints)
	if len(addrs) == 0 {
		return nil, usagef("no endpoints: give --endpoints host:port[,host:port...] or set SKIFF_ENDPOINTS")
	}
	opts := []skiff.ClientOption{skiff.WithDialTimeout(5 * time.Second)}
	if dl, ok := ctx.Deadline(); ok {
		// Calls get ctx's deadline; this only bounds calls that make their
		// own contexts, such as listing pages.
		opts = append(opts, skiff.WithCallTimeout(max(time.Until(dl), time.Millisecond)))
	}
	tlsCfg, err := clientTLS(e.common.cacert, e.common.cert, e.common.key)
	if err != nil {
		return nil, err
	}
	if tlsCfg != nil {
		opts = append(opts, skiff.WithTLS(tlsCfg))
	}
	if e.common.token != "" {
		opts = append(opts, skiff.WithToken(e.common.token))
	}
	if testDialer != nil {
		opts = append(opts, skiff.WithDialer(testDialer))
	}
	return skiff.Dial(ctx, addrs, opts...)
}

// clientTLS builds the client's TLS config from PEM files; nil when none
// is given.
func clientTLS(cacert, cert, key string) (*tls.Config, error) {
	if cacert == "" && cert == "" && key == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if cacert != "" {
		pool, err := loadPool(cacert)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if cert != "" || key != "" {
		pair, err := loadPair(cert, key, "--cert", "--key")
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// loadPool reads a PEM file of CA certificates.
func loadPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, usagef("read CA file: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, usagef("%s holds no PEM certificate", path)
	}
	return pool, nil
}

// loadPair reads a certificate and its key; both or neither must be
// given.
func loadPair(cert, key, certFlag, keyFlag string) (tls.Certificate, error) {
	if cert == "" || key == "" {
		return tls.Certificate{}, usagef("%s and %s go together", certFlag, keyFlag)
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return tls.Certificate{}, usagef("load %s and %s: %v", certFlag, keyFlag, err)
	}
	return pair, nil
}

// closeClient closes cl; its error changes nothing for the command.
func closeClient(cl *skiff.Client) { _ = cl.Close() }

// errorf wraps an error with the verb's context.
func errorf(verb string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", verb, err)
}
