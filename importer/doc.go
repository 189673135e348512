// Package importer writes images from seeds (and, for what no seed holds,
// from a registry) into containerd, through containerd's own service
// interfaces (Services: content, images, snapshotters, leases, diff), so
// the same code runs over the socket (ctr-seed), inside the daemon (the
// plugin; FromClient adapts either client) and on stores opened in a
// directory (its unit tests). Every import of a process shares one
// Limiter of blob copies and layer applies, as containerd's transfer
// service shares its limiters.
//
// An image is imported in three steps, and only the last one is visible:
// every needed blob is written to the content store with its expected
// digest and size (a blob the store already has is neither read nor
// rewritten); the layers are unpacked into the snapshotter by containerd's
// own unpacker, which checks every diffID against the config; then the
// image records are created through the images service, so containerd
// publishes image events and CRI sees them. Everything runs under one
// lease, deleted at the end with a synchronous garbage collection: a failed
// image leaves no record, and its blobs and snapshots go with the lease.
//
// Names follow `ctr images import` exactly (containerd's transfer image
// store does the naming), so the same archive and flags give the same image
// names, targets and snapshot chains.
package importer
