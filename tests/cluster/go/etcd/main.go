// Command etcd is upstream etcd's server entry point, built from go.etcd.io/etcd/server/v3
// (the etcd release pinned by k8s.io/kubernetes) so the test tier needs no prebuilt binary.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
