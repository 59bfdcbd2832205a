package envoy

import (
	"fmt"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
)

// verifiedCheck is a CheckRequest as Envoy sends it behind jwt_authn in
// Istio's layout: the payload under its issuer, the JOSE header beside it,
// and another filter's metadata.
func verifiedCheck(t testing.TB, claims map[string]any) *authv3.CheckRequest {
	t.Helper()
	ns, err := structpb.NewStruct(map[string]any{
		"https://issuer.test": claims,
		"jwt_header":          map[string]any{"alg": "ES256", "kid": "k1", "typ": "JWT"},
	})
	if err != nil {
		t.Fatal(err)
	}
	other, err := structpb.NewStruct(map[string]any{"route": "items", "weight": 3})
	if err != nil {
		t.Fatal(err)
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Method: "GET", Path: "/v1/items", Host: "api.test",
			Headers: map[string]string{":path": "/v1/items", ":method": "GET", "user-agent": "test", "x-request-id": "r1"},
		}},
		ContextExtensions: map[string]string{"route": "items"},
		MetadataContext: &corev3.Metadata{
			FilterMetadata:      map[string]*structpb.Struct{JWTAuthnNamespace: ns, "envoy.filters.http.lua": other},
			TypedFilterMetadata: map[string]*anypb.Any{"x": {TypeUrl: "type.googleapis.com/google.protobuf.Empty"}},
		},
		RouteMetadataContext: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"r": other}},
	}}
}

func aliceClaims() map[string]any {
	return map[string]any{"iss": "https://issuer.test", "sub": "alice", "jti": "t-1", "sid": "s-1",
		"aud": []any{"api", "web"}, "exp": 2000000000, "iat": 1700000000, "scope": "read write",
		"address": map[string]any{"country": "NL", "city": "Delft"}}
}

func marshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// decodeBoth decodes b with the codec and with proto.Unmarshal and fails
// unless both give the same message, or both an error.
func decodeBoth(t testing.TB, c checkCodec, b []byte) *authv3.CheckRequest {
	t.Helper()
	var got, want authv3.CheckRequest
	gotErr := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(b)}, &got)
	wantErr := proto.Unmarshal(b, &want)
	switch {
	case (gotErr == nil) != (wantErr == nil):
		t.Fatalf("codec error %v, proto.Unmarshal error %v (input %x)", gotErr, wantErr, b)
	case gotErr == nil && !proto.Equal(&got, &want):
		t.Fatalf("codec decoded\n%v\nproto.Unmarshal\n%v", &got, &want)
	}
	if gotErr != nil {
		return nil
	}
	return &got
}

// TestCheckCodecSharesOnePayload: requests carrying one payload in any
// order of its map entries (as Envoy, and Go, serialize maps) decode to
// one shared Struct, exactly as proto.Unmarshal decodes them; a payload
// differing in any claim, nested or not, gets its own.
func TestCheckCodecSharesOnePayload(t *testing.T) {
	c := newCheckCodec()
	req := verifiedCheck(t, aliceClaims())
	var first *structpb.Struct
	orders := map[string]bool{}
	for i := range 50 {
		b := marshal(t, req)
		orders[string(b)] = true
		got := decodeBoth(t, c, b)
		s := got.GetAttributes().GetMetadataContext().GetFilterMetadata()[JWTAuthnNamespace]
		if i == 0 {
			first = s
		} else if s != first {
			t.Fatalf("request %d: a payload decoded again", i)
		}
	}
	if len(orders) < 2 {
		t.Fatalf("50 encodings of one request all had the same bytes: the test does not vary the order")
	}
	if m := c.memo.miss.Load(); m != 1 {
		t.Fatalf("%d misses, want 1", m)
	}

	changes := []func(m map[string]any){
		func(m map[string]any) { m["jti"] = "t-2" },
		func(m map[string]any) { m["exp"] = 2000000001 },
		func(m map[string]any) { m["aud"] = []any{"web", "api"} },
		func(m map[string]any) { m["address"] = map[string]any{"country": "NL", "city": "Leiden"} },
		func(m map[string]any) { delete(m, "sid") },
		func(m map[string]any) { m["sid "] = m["sid"]; delete(m, "sid") },
		func(m map[string]any) { m["iat"] = "1700000000" },
		func(m map[string]any) { m["extra"] = nil },
	}
	for i, change := range changes {
		claims := aliceClaims()
		change(claims)
		got := decodeBoth(t, c, marshal(t, verifiedCheck(t, claims)))
		s := got.GetAttributes().GetMetadataContext().GetFilterMetadata()[JWTAuthnNamespace]
		if s == first {
			t.Fatalf("change %d: decoded to alice's shared payload", i)
		}
	}
}

// TestCheckCodecHoldsManyPayloads: a thousand payloads in turn (a
// thousand users' tokens) stay in the memo: the second round decodes
// almost none of them again.
func TestCheckCodecHoldsManyPayloads(t *testing.T) {
	c := newCheckCodec()
	encodings := make([][]byte, 1000)
	for i := range encodings {
		claims := aliceClaims()
		claims["jti"] = fmt.Sprintf("t-%d", i)
		encodings[i] = marshal(t, verifiedCheck(t, claims))
	}
	for _, b := range encodings {
		decodeBoth(t, c, b)
	}
	first := c.memo.miss.Load()
	for _, b := range encodings {
		decodeBoth(t, c, b)
	}
	// A set of memoWays entries overflows seldom at this load; a table of
	// single entries would decode about a fifth again.
	if again := c.memo.miss.Load() - first; first != 1000 || again > 50 {
		t.Fatalf("misses: %d in the first round, %d in the second; want 1000 and at most 50", first, again)
	}
}

// raw encodes fields: each a field number and its bytes (length-delimited).
func raw(fields ...any) []byte {
	var b []byte
	for i := 0; i < len(fields); i += 2 {
		b = protowire.AppendTag(b, protowire.Number(fields[i].(int)), protowire.BytesType)
		switch v := fields[i+1].(type) {
		case string:
			b = protowire.AppendString(b, v)
		case []byte:
			b = protowire.AppendBytes(b, v)
		}
	}
	return b
}

// request wraps the metadata entries (raw) in a CheckRequest.
func request(entries ...[]byte) []byte {
	var md []byte
	for _, e := range entries {
		md = append(md, raw(fieldFilterMetadata, e)...)
	}
	return raw(fieldAttributes, raw(fieldMetadata, md))
}

func strValue(s string) []byte { return raw(3, s) }

// structOf encodes a Struct of key, Value pairs.
func structOf(kv ...any) []byte {
	var b []byte
	for i := 0; i < len(kv); i += 2 {
		b = append(b, raw(1, raw(fieldEntryKey, kv[i].(string), fieldEntryValue, kv[i+1].([]byte)))...)
	}
	return b
}

// TestCheckCodecOddEncodings: encodings a proxy does not send, each
// decoded exactly as proto.Unmarshal decodes it (a field given twice is
// merged, a map key given twice keeps the last), or refused where it is.
func TestCheckCodecOddEncodings(t *testing.T) {
	payload := func(sub string) []byte {
		return raw(fieldStructValue, structOf("iss", strValue("https://issuer.test"), "sub", strValue(sub)))
	}
	ns := func(sub string) []byte { return structOf("https://issuer.test", payload(sub)) }
	entry := func(key string, value []byte) []byte { return raw(fieldEntryKey, key, fieldEntryValue, value) }
	good := request(entry(JWTAuthnNamespace, ns("alice")))
	many := make([]any, 0, 2*(maxEntries+1))
	for i := range maxEntries + 1 {
		many = append(many, fmt.Sprintf("c%02d", i), strValue("v"))
	}
	deep := strValue("leaf")
	for range 30 {
		deep = raw(fieldStructValue, structOf("d", deep))
	}
	cases := map[string][]byte{
		"plain":                 good,
		"no metadata":           raw(fieldAttributes, raw(4, "")),
		"another namespace":     request(entry("envoy.filters.http.lua", ns("alice"))),
		"attributes twice":      append(append([]byte{}, good...), raw(fieldAttributes, raw(fieldMetadata, raw(1, entry(JWTAuthnNamespace, ns("mallory")))))...),
		"metadata twice":        raw(fieldAttributes, append(raw(fieldMetadata, raw(1, entry(JWTAuthnNamespace, ns("alice")))), raw(fieldMetadata, raw(1, entry("x", ns("bob"))))...)),
		"namespace twice":       request(entry(JWTAuthnNamespace, ns("alice")), entry(JWTAuthnNamespace, ns("mallory"))),
		"value before key":      request(raw(fieldEntryValue, ns("mallory"), fieldEntryKey, JWTAuthnNamespace)),
		"key twice in entry":    request(raw(fieldEntryKey, "x", fieldEntryKey, JWTAuthnNamespace, fieldEntryValue, ns("mallory"))),
		"value twice in entry":  request(raw(fieldEntryKey, JWTAuthnNamespace, fieldEntryValue, ns("alice"), fieldEntryValue, ns("mallory"))),
		"claim twice":           request(entry(JWTAuthnNamespace, structOf("https://issuer.test", raw(fieldStructValue, structOf("sub", strValue("alice"), "sub", strValue("mallory")))))),
		"value with two kinds":  request(entry(JWTAuthnNamespace, structOf("https://issuer.test", append(payload("alice"), strValue("mallory")...)))),
		"unknown field":         append(request(entry(JWTAuthnNamespace, ns("alice"))), raw(99, "x")...),
		"unknown in struct":     request(entry(JWTAuthnNamespace, append(ns("alice"), raw(7, "x")...))),
		"empty payload":         request(entry(JWTAuthnNamespace, nil)),
		"bad utf-8 key":         request(entry(JWTAuthnNamespace, structOf("\xff\xfe", strValue("x")))),
		"bad utf-8 value":       request(entry(JWTAuthnNamespace, structOf("sub", strValue("\xff")))),
		"wrong wire type":       append(protowire.AppendTag(nil, fieldAttributes, protowire.VarintType), 1),
		"over maxEntries":       request(entry(JWTAuthnNamespace, structOf(many...))),
		"deeper than maxDepth":  request(entry(JWTAuthnNamespace, structOf("d", deep))),
		"larger than maxCanon":  request(entry(JWTAuthnNamespace, structOf("big", strValue(strings.Repeat("x", maxCanon))))),
		"namespace key wrapped": request(entry(JWTAuthnNamespace+"\x00", ns("alice"))),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			c := newCheckCodec()
			for range 2 { // a miss, then a hit
				decodeBoth(t, c, b)
			}
			// Every prefix, and every byte changed, of the encoding.
			for i := range b {
				decodeBoth(t, c, b[:i])
				for _, x := range []byte{0x00, 0x01, 0x80, 0xff} {
					changed := append([]byte{}, b...)
					changed[i] ^= x
					decodeBoth(t, c, changed)
				}
			}
		})
	}
}

// TestCheckCodecRecursionLimit: a request nested just within, and just
// beyond, the decoder's recursion limit outside the payload (in the route
// metadata, and in another filter's metadata beside jwt_authn's) is
// accepted, or refused, as proto.Unmarshal does.
func TestCheckCodecRecursionLimit(t *testing.T) {
	entry := raw(fieldEntryKey, JWTAuthnNamespace, fieldEntryValue, structOf("sub", strValue("alice")))
	// A Value with levels more messages inside: Values in lists (two
	// each: Value, ListValue), and one in a Struct (three: Value, Struct,
	// entry) when levels is odd.
	deep := func(levels int) []byte {
		v := strValue("leaf")
		if levels%2 == 1 {
			v, levels = raw(fieldStructValue, structOf("d", v)), levels-3
		}
		for ; levels > 0; levels -= 2 {
			v = raw(6, raw(1, v))
		}
		return v
	}
	for name, nested := range map[string]func(int) []byte{
		// AttributeContext.route_metadata_context (13) → Metadata → entry → Struct → entry → Value …
		"route metadata": func(levels int) []byte {
			route := raw(13, raw(fieldFilterMetadata, raw(fieldEntryKey, "r", fieldEntryValue, structOf("d", deep(levels)))))
			return raw(fieldAttributes, append(raw(fieldMetadata, raw(fieldFilterMetadata, entry)), route...))
		},
		// metadata_context → entry → Struct → entry → Value …, after jwt_authn's entry
		"filter metadata": func(levels int) []byte {
			other := raw(fieldEntryKey, "x", fieldEntryValue, structOf("d", deep(levels)))
			return request(entry, other)
		},
	} {
		t.Run(name, func(t *testing.T) {
			// The deepest nesting proto.Unmarshal accepts, by bisection.
			lo, hi := protowire.DefaultRecursionLimit-32, protowire.DefaultRecursionLimit
			for lo+1 < hi {
				mid := (lo + hi) / 2
				if proto.Unmarshal(nested(mid), &authv3.CheckRequest{}) == nil {
					lo = mid
				} else {
					hi = mid
				}
			}
			if proto.Unmarshal(nested(lo), &authv3.CheckRequest{}) != nil || proto.Unmarshal(nested(hi), &authv3.CheckRequest{}) == nil {
				t.Fatalf("no boundary found between %d and %d levels", lo, hi)
			}
			for _, levels := range []int{lo, hi} {
				decodeBoth(t, newCheckCodec(), nested(levels))
			}
		})
	}
}

// FuzzCheckCodec: whatever the bytes, the codec decodes them as
// proto.Unmarshal does, the first time (a miss) and the second (a hit).
func FuzzCheckCodec(f *testing.F) {
	req := verifiedCheck(f, aliceClaims())
	for range 4 {
		f.Add(marshal(f, req))
	}
	f.Add(request(raw(fieldEntryKey, JWTAuthnNamespace, fieldEntryValue, structOf("sub", strValue("alice")))))
	c := newCheckCodec()
	f.Fuzz(func(t *testing.T, b []byte) {
		decodeBoth(t, c, b)
		decodeBoth(t, c, b)
	})
}

// BenchmarkCheckCodec decodes the request Envoy sends behind jwt_authn:
// proto.Unmarshal, as gRPC's codec does, against checkCodec, each request
// encoded anew (map order varies, as Envoy's does).
func BenchmarkCheckCodec(b *testing.B) {
	req := verifiedCheck(b, aliceClaims())
	encodings := make([][]byte, 64)
	for i := range encodings {
		encodings[i] = marshal(b, req)
	}
	b.Run("proto", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			var r authv3.CheckRequest
			if err := proto.Unmarshal(encodings[i%len(encodings)], &r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("memo", func(b *testing.B) {
		c := newCheckCodec()
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			var r authv3.CheckRequest
			if err := c.Unmarshal(mem.BufferSlice{mem.SliceBuffer(encodings[i%len(encodings)])}, &r); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkCanonStruct is the canonical form of a payload and header
// (Istio's layout) alone: what the codec spends on a payload it has.
func BenchmarkCanonStruct(b *testing.B) {
	var p checkParts
	if !p.locate(marshal(b, verifiedCheck(b, aliceClaims()))) {
		b.Fatal("no jwt_authn metadata found")
	}
	b.ReportAllocs()
	for b.Loop() {
		var c canonBuf
		if !canonStruct(&c, p.value, 0, new(int)) {
			b.Fatal("not canonical")
		}
	}
}
