// Package vmem gives the operating system hints about large float32
// buffers: transparent huge pages for them (AdviseHuge) and allocating
// their pages ahead of the first stores (PrefaultWrite). Every hint leaves
// the buffer's contents alone, and where the system has no such hint it
// does nothing.
package vmem
