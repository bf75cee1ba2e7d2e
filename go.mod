module github.com/surgeon-ml/surgeon

go 1.26.8

require (
	github.com/BurntSushi/toml v1.6.0 // indirect
	github.com/google/flatbuffers v23.5.26+incompatible // indirect
	github.com/nlpodyssey/spago v1.1.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
)
