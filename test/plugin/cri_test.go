package plugin_test

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// criImages asks the CRI image service on the daemon's socket, as kubelet
// and crictl do, for its images, keyed by repo tag.
func criImages(address string) (map[string]*runtime.Image, error) {
	conn, err := grpc.NewClient("unix://"+address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := runtime.NewImageServiceClient(conn).ListImages(ctx, &runtime.ListImagesRequest{})
	if err != nil {
		return nil, fmt.Errorf("CRI ListImages: %w", err)
	}
	out := map[string]*runtime.Image{}
	for _, img := range resp.Images {
		for _, tag := range img.RepoTags {
			out[tag] = img
		}
	}
	return out, nil
}

// criHas returns why CRI does not (yet) list every name, pinned, or nil.
func criHas(address string, names []string) error {
	imgs, err := criImages(address)
	if err != nil {
		return err
	}
	for _, n := range names {
		img, ok := imgs[n]
		if !ok {
			tags := make([]string, 0, len(imgs))
			for k := range imgs {
				tags = append(tags, k)
			}
			return fmt.Errorf("CRI does not list %s (it lists %v)", n, tags)
		}
		if !img.Pinned {
			return fmt.Errorf("CRI lists %s but not as pinned", n)
		}
	}
	return nil
}
