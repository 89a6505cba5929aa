package skiff

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"strings"

	skiffpb "github.com/skiffkv/skiff/proto"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
)

// The trust model of a node's port. Two kinds of callers reach it:
//
//   - peers, the other members: Raft traffic, forwarded requests, joins,
//     read indexes. A peer can do anything, so a peer must prove it is one:
//     with the cluster secret (Config.ClusterSecret), with a TLS
//     certificate whose identity is in Config.PeerNames, or both when
//     both are configured.
//   - clients, with a role: RoleReadOnly reads and watches, RoleReadWrite
//     also writes, RoleAdmin also changes membership and leadership and
//     takes and restores backups. The role comes from a bearer token
//     (Config.ClientTokens, sent with WithToken) or a certificate identity
//     (Config.ClientNames); a caller with neither has Config.AnonymousRole.
//
// A node that authenticates no peers (neither is configured) is open:
// every caller is a peer. It may only listen on a loopback address, or on
// any address when Config.InsecureOpen says so.

// Role is what a network client may do; see Config.ClientTokens.
type Role string

const (
	// RoleReadOnly reads, lists, watches and reads the members and status.
	RoleReadOnly Role = "readonly"
	// RoleReadWrite also writes.
	RoleReadWrite Role = "readwrite"
	// RoleAdmin also adds and removes members, moves leadership, and takes
	// and restores backups over the network.
	RoleAdmin Role = "admin"
)

// access is what a call needs, in increasing order.
type access int

const (
	accessNone access = iota
	accessRead
	accessWrite
	accessAdmin
	accessPeer
)

func (r Role) access() access {
	switch r {
	case RoleReadOnly:
		return accessRead
	case RoleReadWrite:
		return accessWrite
	case RoleAdmin:
		return accessAdmin
	}
	return accessNone
}

func (r Role) valid() bool { return r.access() != accessNone }

// metaSecret carries the cluster secret on a peer's calls; metaAuth a
// client's bearer token.
const (
	metaSecret = "skiff-cluster-secret"
	metaAuth   = "authorization"
)

// methodAccess is what each method on the port needs. A method missing
// from it needs a peer.
var methodAccess = map[string]access{
	"/skiff.v1.KV/Get":                     accessRead,
	"/skiff.v1.KV/List":                    accessRead,
	"/skiff.v1.KV/Children":                accessRead,
	"/skiff.v1.KV/Prefixes":                accessRead,
	"/skiff.v1.KV/Watch":                   accessRead,
	"/skiff.v1.KV/Batch":                   accessRead, // and write for its writes; see batchAccess
	"/skiff.v1.KV/Put":                     accessWrite,
	"/skiff.v1.KV/Delete":                  accessWrite,
	"/skiff.v1.Cluster/Members":            accessRead,
	"/skiff.v1.Cluster/Status":             accessRead,
	"/skiff.v1.Cluster/AddMember":          accessAdmin,
	"/skiff.v1.Cluster/RemoveMember":       accessAdmin,
	"/skiff.v1.Cluster/TransferLeadership": accessAdmin,
	"/skiff.v1.Cluster/Backup":             accessAdmin, // the whole state at once
	"/skiff.v1.Cluster/Restore":            accessAdmin,
	"/skiff.v1.Cluster/ReadIndex":          accessPeer,
	"/grpc.health.v1.Health/Check":         accessNone, // anyone: it says nothing about the data
	"/grpc.health.v1.Health/List":          accessNone,
	"/grpc.health.v1.Health/Watch":         accessNone,
}

// batchAccess is what a decoded Batch needs: write access if it writes.
func batchAccess(m any) access {
	req, ok := m.(*skiffpb.BatchRequest)
	if !ok {
		return accessNone
	}
	for _, op := range req.GetOps() {
		if op.GetPut() != nil || op.GetDelete() != nil {
			return accessWrite
		}
	}
	return accessRead
}

// authority decides who may call what on a node's port.
type authority struct {
	open      bool     // no peer authentication: every caller is a peer
	secret    [32]byte // SHA-256 of Config.ClusterSecret
	useSecret bool
	peerNames []string
	tokens    map[[32]byte]Role // by SHA-256 of the token
	names     map[string]Role
	anonymous Role
}

func newAuthority(cfg Config) *authority {
	a := &authority{
		useSecret: cfg.ClusterSecret != "",
		peerNames: cfg.PeerNames,
		names:     cfg.ClientNames,
		anonymous: cfg.AnonymousRole,
		tokens:    map[[32]byte]Role{},
	}
	a.open = !a.useSecret && len(a.peerNames) == 0
	if a.useSecret {
		a.secret = sha256.Sum256([]byte(cfg.ClusterSecret))
	}
	for tok, role := range cfg.ClientTokens {
		a.tokens[sha256.Sum256([]byte(tok))] = role
	}
	return a
}

// allow returns nil if the caller behind ctx may make a call needing
// need, and an error wrapping ErrPermissionDenied otherwise. peerPort
// says the call came to a peer-only listener, where clients have no
// business at all.
func (a *authority) allow(ctx context.Context, need access, method string, peerPort bool) error {
	if a.open {
		return nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	names := certNames(ctx)
	if a.isPeer(md, names) {
		return nil
	}
	if peerPort {
		return fmt.Errorf("%w: %s: this port serves peers only", ErrPermissionDenied, method)
	}
	if need == accessPeer || len(md.Get(metaForwarded)) > 0 {
		return fmt.Errorf("%w: %s is for cluster members only", ErrPermissionDenied, method)
	}
	role, err := a.clientRole(md, names)
	if err != nil {
		return err
	}
	if role.access() < need {
		if role == "" {
			return fmt.Errorf("%w: %s needs credentials (a token or a client certificate)", ErrPermissionDenied, method)
		}
		return fmt.Errorf("%w: role %q may not call %s", ErrPermissionDenied, role, method)
	}
	return nil
}

// isPeer reports whether the caller proves it is a member: every
// configured proof must hold.
func (a *authority) isPeer(md metadata.MD, names []string) bool {
	if a.useSecret {
		got := md.Get(metaSecret)
		if len(got) != 1 {
			return false
		}
		sum := sha256.Sum256([]byte(got[0]))
		if subtle.ConstantTimeCompare(sum[:], a.secret[:]) != 1 {
			return false
		}
	}
	if len(a.peerNames) > 0 {
		return anyNameMatches(names, a.peerNames)
	}
	return true
}

// clientRole returns the best role the caller's credentials give it. A
// token that matches no configured one is refused, not ignored: the caller
// meant to authenticate.
func (a *authority) clientRole(md metadata.MD, names []string) (Role, error) {
	role := a.anonymous
	if auth := md.Get(metaAuth); len(auth) > 0 {
		tok, ok := strings.CutPrefix(auth[0], "Bearer ")
		r, known := a.tokenRole(tok)
		if !ok || !known {
			return "", fmt.Errorf("%w: invalid token", ErrPermissionDenied)
		}
		role = better(role, r)
	}
	for pattern, r := range a.names {
		if anyNameMatches(names, []string{pattern}) {
			role = better(role, r)
		}
	}
	return role, nil
}

// tokenRole looks tok up, comparing it with every configured token in
// constant time.
func (a *authority) tokenRole(tok string) (Role, bool) {
	sum := sha256.Sum256([]byte(tok))
	var found Role
	for t, r := range a.tokens {
		if subtle.ConstantTimeCompare(sum[:], t[:]) == 1 {
			found = r
		}
	}
	return found, found != ""
}

func better(a, b Role) Role {
	if b.access() > a.access() {
		return b
	}
	return a
}

// certNames returns the identities of the caller's verified client
// certificate: its DNS and URI SANs and its subject CN. A certificate the
// server did not verify (no ClientAuth that verifies) gives none.
func certNames(ctx context.Context) []string {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return nil
	}
	return identities(info.State.VerifiedChains[0][0])
}

func identities(c *x509.Certificate) []string {
	names := append([]string(nil), c.DNSNames...)
	for _, u := range c.URIs {
		names = append(names, u.String())
	}
	if c.Subject.CommonName != "" {
		names = append(names, c.Subject.CommonName)
	}
	return names
}

// anyNameMatches reports whether one of names matches one of patterns:
// exactly, or, for a pattern "*.example.com", with any one first label.
func anyNameMatches(names, patterns []string) bool {
	for _, p := range patterns {
		for _, n := range names {
			if n == p {
				return true
			}
			if rest, ok := strings.CutPrefix(p, "*."); ok {
				label, domain, found := strings.Cut(n, ".")
				if found && label != "" && domain == rest {
					return true
				}
			}
		}
	}
	return false
}

// verifiesClients reports whether a TLS config verifies client
// certificates, which identities need.
func verifiesClients(c *tls.Config) bool {
	return c != nil && (c.ClientAuth == tls.VerifyClientCertIfGiven || c.ClientAuth == tls.RequireAndVerifyClientCert)
}

// secretCreds sends the cluster secret with every call of a peer.
type secretCreds string

func (s secretCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{metaSecret: string(s)}, nil
}

func (secretCreds) RequireTransportSecurity() bool { return false }

// tokenCreds sends a client's bearer token with every call.
type tokenCreds string

func (t tokenCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{metaAuth: "Bearer " + string(t)}, nil
}

func (tokenCreds) RequireTransportSecurity() bool { return false }
