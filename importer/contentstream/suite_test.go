package contentstream

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"testing"

	contentapi "github.com/containerd/containerd/api/services/content/v1"
	introspectionapi "github.com/containerd/containerd/api/services/introspection/v1"
	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/content/proxy"
	"github.com/containerd/containerd/v2/core/content/testsuite"
	"github.com/containerd/containerd/v2/core/metadata"
	"github.com/containerd/containerd/v2/defaults"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/containerd/containerd/v2/plugins/services/content/contentserver"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// containerd's content store conformance suite, against the Store a
// client writes through: over a real gRPC content service on containerd's
// local and metadata stores, as the daemon serves them. Streamed: every
// blob over the stream. Direct: the daemon's content root is reachable
// (as on the node, root), so big blobs go into its ingest files.
//
// One part of the contract is not kept, by design: a Write returns once
// its chunks are sent, before the daemon has written them, so a Status
// right after it is the daemon's, stamped later than the Write's return
// (the suite's UpdateStatus and Resume check UpdatedAt against it). The
// suite's writers wait for the daemon after each Write (syncWrites); all
// else is the Store's own.
func TestContentSuite(t *testing.T) {
	t.Run("Streamed", func(t *testing.T) {
		testsuite.ContentSuite(t, "contentstream", served(false, StreamOnly()))
	})
	t.Run("Direct", func(t *testing.T) {
		testsuite.ContentSuite(t, "contentstream-direct", served(true))
	})
}

// served starts containerd's content service on a local store in root,
// and returns the Store a client makes of it; with introspect, the
// service tells where the store's root is.
func served(introspect bool, opts ...Opt) testsuite.StoreInitFn {
	return func(ctx context.Context, root string) (context.Context, content.Store, func() error, error) {
		// The daemon serves its metadata store's content (labels,
		// namespaces) over containerd's local store.
		local, err := local.NewStore(root)
		if err != nil {
			return nil, nil, nil, err
		}
		bdb, err := bolt.Open(filepath.Join(root, "meta.db"), 0o600, nil)
		if err != nil {
			return nil, nil, nil, err
		}
		db := metadata.NewDB(bdb, local, nil)
		if err := db.Init(ctx); err != nil {
			return nil, nil, nil, err
		}
		cs := db.ContentStore()
		ctx = namespaces.WithNamespace(ctx, "suite")
		sock := filepath.Join(root, "c.sock")
		l, err := net.Listen("unix", sock)
		if err != nil {
			return nil, nil, nil, err
		}
		// The daemon's and its client's message bounds.
		srv := grpc.NewServer(grpc.MaxRecvMsgSize(defaults.DefaultMaxRecvMsgSize), grpc.MaxSendMsgSize(defaults.DefaultMaxSendMsgSize))
		contentapi.RegisterContentServer(srv, contentserver.New(cs))
		if introspect {
			introspectionapi.RegisterIntrospectionServer(srv, contentRootServer{root: root})
		}
		go srv.Serve(l)
		conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(defaults.DefaultMaxRecvMsgSize), grpc.MaxCallSendMsgSize(defaults.DefaultMaxSendMsgSize)))
		if err != nil {
			srv.Stop()
			return nil, nil, nil, err
		}
		s, ok := New(proxy.NewContentStore(contentapi.NewContentClient(conn)), conn, opts...).(*Store)
		if !ok {
			return nil, nil, nil, fmt.Errorf("not a streaming store over %T", conn)
		}
		return ctx, syncWrites{s}, func() error {
			conn.Close()
			srv.Stop()
			return db.Close()
		}, nil
	}
}

// contentRootServer answers, as the daemon's introspection service does,
// where its content plugin keeps the store.
type contentRootServer struct {
	introspectionapi.UnimplementedIntrospectionServer
	root string
}

func (s contentRootServer) Plugins(context.Context, *introspectionapi.PluginsRequest) (*introspectionapi.PluginsResponse, error) {
	return &introspectionapi.PluginsResponse{Plugins: []*introspectionapi.Plugin{{
		Type: "io.containerd.content.v1", ID: "content", Exports: map[string]string{"root": s.root},
	}}}, nil
}

// syncWrites waits, after each Write, for the daemon to have written it
// (a Status waits for the replies to every write before it).
type syncWrites struct{ *Store }

func (s syncWrites) Writer(ctx context.Context, opts ...content.WriterOpt) (content.Writer, error) {
	w, err := s.Store.Writer(ctx, opts...)
	if err != nil {
		return nil, err
	}
	return syncWriter{w}, nil
}

type syncWriter struct{ content.Writer }

func (w syncWriter) Write(p []byte) (int, error) {
	n, err := w.Writer.Write(p)
	if err == nil {
		_, err = w.Writer.Status()
	}
	return n, err
}
