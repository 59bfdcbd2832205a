package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	protocodec "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"

	"github.com/jwtguard/jwtguard/authz"
)

// Outcome is the decision a server returned for one request.
type Outcome struct {
	Reason authz.Reason
	// RevokedBy is the kind of record behind a revoked decision, when the
	// transport reports it (gRPC dynamic metadata; not forward-auth).
	RevokedBy authz.Kind
}

// target sends one check and reads the decision.
type target interface {
	check(ctx context.Context, worker int, t *Token) (Outcome, error)
	// reportsKind says whether Outcome.RevokedBy is filled.
	reportsKind() bool
	close() error
}

// grpcTarget spreads workers over conns HTTP/2 connections.
type grpcTarget struct {
	conns   []*grpc.ClientConn
	clients []authv3.AuthorizationClient
}

// encoded is a CheckRequest encoded ahead of the run (Token.wire).
type encoded []byte

// clientCodec is gRPC's proto codec, except that it sends an encoded
// request as it is: the load generator shares the machine with the server,
// and encoding a request anew each time (maps, Structs) would take from
// the server's CPU, more for some requests than others.
type clientCodec struct{ encoding.CodecV2 }

func (c clientCodec) Marshal(v any) (mem.BufferSlice, error) {
	if e, ok := v.(*encoded); ok {
		return mem.BufferSlice{mem.SliceBuffer(*e)}, nil
	}
	return c.CodecV2.Marshal(v)
}

func dialGRPC(addr string, conns int) (*grpcTarget, error) {
	t := &grpcTarget{}
	codec := clientCodec{encoding.GetCodecV2(protocodec.Name)}
	for range conns {
		// Each ClientConn is one HTTP/2 connection, as an Envoy worker
		// thread holds one to its ext_authz cluster.
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.ForceCodecV2(codec)))
		if err != nil {
			_ = t.close()
			return nil, fmt.Errorf("dial %s: %w", addr, err)
		}
		t.conns = append(t.conns, cc)
		t.clients = append(t.clients, authv3.NewAuthorizationClient(cc))
	}
	return t, nil
}

func (t *grpcTarget) check(ctx context.Context, worker int, tok *Token) (Outcome, error) {
	var (
		resp *authv3.CheckResponse
		err  error
	)
	if len(tok.wire) > 0 {
		// One of the token's encodings, at random: maps are encoded in no
		// fixed order, as Envoy's are.
		resp = &authv3.CheckResponse{}
		err = t.conns[worker%len(t.conns)].Invoke(ctx, authv3.Authorization_Check_FullMethodName, &tok.wire[rand.IntN(len(tok.wire))], resp)
	} else {
		req := tok.req
		switch {
		case req == nil && tok.Category == Forged:
			req = checkRequestFrom(tok.Value, FloodAddress)
		case req == nil:
			req = checkRequest(tok.Value)
		}
		resp, err = t.clients[worker%len(t.clients)].Check(ctx, req)
	}
	if err != nil {
		return Outcome{}, err
	}
	st := resp.GetStatus()
	if codes.Code(st.GetCode()) == codes.OK {
		return Outcome{Reason: authz.ReasonOK}, nil
	}
	out := Outcome{Reason: authz.Reason(st.GetMessage())}
	if v, ok := resp.GetDynamicMetadata().GetFields()["revoked_by"]; ok {
		out.RevokedBy = authz.Kind(v.GetStringValue())
	}
	if out.Reason == "" {
		out.Reason = authz.Reason("code_" + codes.Code(st.GetCode()).String())
	}
	return out, nil
}

func (t *grpcTarget) reportsKind() bool { return true }

func (t *grpcTarget) close() error {
	var first error
	for _, cc := range t.conns {
		if err := cc.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// httpTarget calls a forward-auth endpoint, one HTTP/1.1 connection per
// in-flight request, as nginx auth_request or Traefik forwardAuth do.
type httpTarget struct {
	url    string
	client *http.Client
}

func newHTTPTarget(url string, streams int) *httpTarget {
	tr := &http.Transport{MaxIdleConns: streams, MaxIdleConnsPerHost: streams, DisableCompression: true}
	return &httpTarget{url: url, client: &http.Client{Transport: tr}}
}

func (t *httpTarget) check(ctx context.Context, _ int, tok *Token) (Outcome, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url, nil)
	if err != nil {
		return Outcome{}, err
	}
	h := req.Header
	h.Set("Authorization", "Bearer "+tok.Value)
	h.Set("X-Forwarded-Method", "GET")
	h.Set("X-Forwarded-Proto", "https")
	h.Set("X-Forwarded-Host", "api.loadgen.test")
	h.Set("X-Forwarded-Uri", "/v1/items?limit=10")
	resp, err := t.client.Do(req)
	if err != nil {
		return Outcome{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if err != nil {
		return Outcome{}, fmt.Errorf("read forward-auth answer: %w", err)
	}
	if resp.StatusCode == http.StatusOK {
		return Outcome{Reason: authz.ReasonOK}, nil
	}
	var deny struct {
		Reason string `json:"reason"`
	}
	if err := json.Unmarshal(body, &deny); err != nil || deny.Reason == "" {
		return Outcome{Reason: authz.Reason(fmt.Sprintf("http_%d", resp.StatusCode))}, nil
	}
	return Outcome{Reason: authz.Reason(strings.TrimSpace(deny.Reason))}, nil
}

func (t *httpTarget) reportsKind() bool { return false }

func (t *httpTarget) close() error {
	t.client.CloseIdleConnections()
	return nil
}
