package envoy_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	rpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/jwtguard/jwtguard/authz"
)

// reflectionClient calls a method knowing only what server reflection
// tells it, as grpcurl does: no generated code for the service.
type reflectionClient struct {
	conn  *grpc.ClientConn
	files *protoregistry.Files
}

func newReflectionClient(t *testing.T, addr string) *reflectionClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &reflectionClient{conn: conn}
}

// services lists the services the server offers.
func (rc *reflectionClient) services(t *testing.T) []string {
	t.Helper()
	resp := rc.ask(t, &rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_ListServices{}})
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	return names
}

func (rc *reflectionClient) ask(t *testing.T, req *rpb.ServerReflectionRequest) *rpb.ServerReflectionResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := rpb.NewServerReflectionClient(rc.conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(req); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if e := resp.GetErrorResponse(); e != nil {
		t.Fatalf("reflection: %s", e.GetErrorMessage())
	}
	return resp
}

// load fetches the file defining symbol and, transitively, its imports.
func (rc *reflectionClient) load(t *testing.T, symbol string) {
	t.Helper()
	protos := map[string]*descriptorpb.FileDescriptorProto{}
	var fetch func(req *rpb.ServerReflectionRequest)
	fetch = func(req *rpb.ServerReflectionRequest) {
		for _, raw := range rc.ask(t, req).GetFileDescriptorResponse().GetFileDescriptorProto() {
			fd := &descriptorpb.FileDescriptorProto{}
			if err := proto.Unmarshal(raw, fd); err != nil {
				t.Fatal(err)
			}
			if _, ok := protos[fd.GetName()]; ok {
				continue
			}
			protos[fd.GetName()] = fd
			for _, dep := range fd.GetDependency() {
				if _, ok := protos[dep]; !ok {
					fetch(&rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_FileByFilename{FileByFilename: dep}})
				}
			}
		}
	}
	fetch(&rpb.ServerReflectionRequest{MessageRequest: &rpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: symbol}})
	set := &descriptorpb.FileDescriptorSet{}
	for _, fd := range protos {
		set.File = append(set.File, fd)
	}
	files, err := protodesc.NewFiles(set)
	if err != nil {
		t.Fatal(err)
	}
	rc.files = files
}

// call invokes method with a JSON request, as `grpcurl -d` does, and
// returns the JSON answer.
func (rc *reflectionClient) call(t *testing.T, method, reqJSON string) string {
	t.Helper()
	svc, name, _ := strings.Cut(method, "/")
	d, err := rc.files.FindDescriptorByName(protoreflect.FullName(svc))
	if err != nil {
		t.Fatal(err)
	}
	m := d.(protoreflect.ServiceDescriptor).Methods().ByName(protoreflect.Name(name))
	req := dynamicpb.NewMessage(m.Input())
	resolver := dynamicpb.NewTypes(rc.files)
	if err := (protojson.UnmarshalOptions{Resolver: resolver}).Unmarshal([]byte(reqJSON), req); err != nil {
		t.Fatal(err)
	}
	resp := dynamicpb.NewMessage(m.Output())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rc.conn.Invoke(ctx, "/"+method, req, resp); err != nil {
		t.Fatal(err)
	}
	out, err := protojson.MarshalOptions{Resolver: resolver}.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// envoyRequest is a CheckRequest as Envoy's ext_authz filter sends it.
func envoyRequest(tok string) string {
	return `{"attributes":{
	  "source":{"address":{"socketAddress":{"address":"10.1.2.3","portValue":51234}}},
	  "destination":{"address":{"socketAddress":{"address":"10.1.2.9","portValue":8080}}},
	  "request":{"time":"2026-11-23T10:00:00Z","http":{
	    "id":"7371834823423","method":"POST","path":"/v1/orders?limit=5","host":"orders.example.test",
	    "scheme":"https","protocol":"HTTP/2","size":"42",
	    "headers":{":authority":"orders.example.test",":method":"POST",":path":"/v1/orders?limit=5",":scheme":"https",
	      "authorization":"Bearer ` + tok + `","content-type":"application/json","x-forwarded-proto":"https",
	      "x-request-id":"5b3c9e1a-0000-4000-8000-000000000001","user-agent":"curl/8.5.0"}}},
	  "contextExtensions":{"virtual_host":"orders"},
	  "tlsSession":{"sni":"orders.example.test"}}}`
}

func TestCheckThroughReflectionAsEnvoySendsIt(t *testing.T) {
	e := newEnv(t)
	rc := newReflectionClient(t, e.addr)
	services := strings.Join(rc.services(t), " ")
	for _, want := range []string{"envoy.service.auth.v3.Authorization", "grpc.health.v1.Health"} {
		if !strings.Contains(services, want) {
			t.Fatalf("reflection lists %q, missing %s", services, want)
		}
	}
	rc.load(t, "envoy.service.auth.v3.Authorization")
	good := e.token(t, nil)
	revoked := e.token(t, func(c map[string]any) { c["jti"] = "stolen" })
	e.revoke(authz.Record{Kind: authz.KindToken, Issuer: issA, Value: "stolen"})
	tests := []struct {
		name string
		tok  string
		want []string
	}{
		{"allow", good, []string{`"okResponse"`, `"x-jwt-sub"`, `"alice"`}},
		{"deny", good[:len(good)-4] + "AAAA", []string{`"code":16`, `"Unauthorized"`, `error_description=\"bad_signature\"`}},
		{"revoked", revoked, []string{`"code":16`, `"Unauthorized"`, `\"reason\":\"revoked\"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := rc.call(t, "envoy.service.auth.v3.Authorization/Check", envoyRequest(tc.tok))
			compact := strings.Join(strings.Fields(out), "")
			for _, w := range tc.want {
				if !strings.Contains(compact, w) {
					t.Errorf("answer lacks %s:\n%s", w, out)
				}
			}
		})
	}
}

// TestHealthOnTheCheckListener: the gRPC health service given to the
// server answers on the ext_authz listener, with the status its owner sets.
func TestHealthOnTheCheckListener(t *testing.T) {
	e := newEnv(t)
	conn, err := grpc.NewClient(e.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	for _, want := range []healthpb.HealthCheckResponse_ServingStatus{healthpb.HealthCheckResponse_NOT_SERVING, healthpb.HealthCheckResponse_SERVING} {
		e.health.SetServingStatus("", want)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err != nil || resp.GetStatus() != want {
			t.Errorf("health: %v, %v; want %s", resp.GetStatus(), err, want)
		}
	}
}
