package importer

import (
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
)

// A name pinned to a digest must pin the image's own; names without a pin,
// and strings that are no reference, are left to the other checks.
func TestPinnedElsewhere(t *testing.T) {
	target, other := digest.FromString("target"), digest.FromString("other")
	for name, refused := range map[string]bool{
		"registry.local/app@" + target.String():   false,
		"registry.local/app:1@" + target.String(): false,
		"app@" + target.String():                  false,
		"registry.local/app:1":                    false,
		"import-2026-01-01@" + target.String():    false,
		"not a reference":                         false,
		"registry.local/app@" + other.String():    true,
		"registry.local/app:1@" + other.String():  true,
		"docker.io/library/app@" + other.String(): true,
		"import-2026-01-01@" + other.String():     true,
	} {
		err := pinnedElsewhere(name, target)
		if (err != nil) != refused {
			t.Errorf("%s: %v; want refused %v", name, err, refused)
		}
		if err != nil && (!errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "pins "+other.String())) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
