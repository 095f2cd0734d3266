package oip_test

import (
	"context"
	"crypto/subtle"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/quiverml/quiver/serving"
	"github.com/quiverml/quiver/serving/oip"
	pb "github.com/quiverml/quiver/serving/oip/inferencepb"
	"github.com/quiverml/quiver/serving/onnx"
	"github.com/quiverml/quiver/serving/servingtest"
)

// requireToken is ordinary net/http middleware: the package has no
// authentication of its own, so any middleware (bearer tokens, mTLS
// identities, an API gateway's headers) goes in front of the handler.
func requireToken(token string, next http.Handler) http.Handler {
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Probes stay open so that an orchestrator can check health.
		if !strings.HasPrefix(r.URL.Path, "/v2/health/") &&
			subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("WWW-Authenticate", "Bearer")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":"missing or wrong bearer token"}`)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// The REST endpoints behind a bearer-token check.
func Example_bearerToken() {
	ctx := context.Background()
	m, err := onnx.Load(ctx, servingtest.ModelPath("mlp"), onnx.Options{})
	if err != nil {
		panic(err)
	}
	b, err := serving.NewBatcher(m, serving.BatcherOptions{})
	if err != nil {
		panic(err)
	}
	defer b.Close() // closes m too

	h := oip.NewHandler(oip.Models(map[string]serving.Model{"mlp": b}), oip.HandlerOptions{})
	mux := http.NewServeMux()
	mux.Handle("/v2/", requireToken("s3cret", h))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	infer := func(token string) {
		body := `{"inputs": [{"name": "x", "shape": [1, 16], "datatype": "FP32",
			"data": [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]}]}`
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v2/models/mlp/infer", strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			panic(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		fmt.Println(resp.StatusCode, string(out)[:min(len(out), 44)])
	}
	infer("")
	infer("s3cret")
	// Output:
	// 401 {"error":"missing or wrong bearer token"}
	// 200 {"model_name":"mlp","outputs":[{"name":"y","
}

// The gRPC service behind the same check, as a unary interceptor.
func ExampleRegisterGRPC() {
	check := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		auth := md.Get("authorization")
		if info.FullMethod != pb.GRPCInferenceService_ServerLive_FullMethodName &&
			(len(auth) != 1 || subtle.ConstantTimeCompare([]byte(auth[0]), []byte("Bearer s3cret")) != 1) {
			return nil, status.Error(codes.Unauthenticated, "missing or wrong bearer token")
		}
		return next(ctx, req)
	}
	s := grpc.NewServer(grpc.UnaryInterceptor(check), grpc.MaxRecvMsgSize(64<<20))
	oip.RegisterGRPC(s, oip.Models(nil), oip.GRPCOptions{ServerName: "ranker-service"})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go s.Serve(lis)
	defer s.Stop()

	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	client := pb.NewGRPCInferenceServiceClient(conn)
	ctx := context.Background()
	_, err = client.ServerMetadata(ctx, &pb.ServerMetadataRequest{})
	fmt.Println(status.Code(err))
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer s3cret")
	md, err := client.ServerMetadata(ctx, &pb.ServerMetadataRequest{})
	fmt.Println(md.GetName(), md.GetExtensions(), err)
	// Output:
	// Unauthenticated
	// ranker-service [binary_tensor_data] <nil>
}
