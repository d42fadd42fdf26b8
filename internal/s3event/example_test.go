package s3event_test

import (
	"fmt"

	"github.com/lazaret/lazaret/internal/s3event"
)

// MinIO reports the scanner's own tag write as s3:ObjectCreated:PutTagging;
// only the Put triggers a scan.
func ExampleParse() {
	body := []byte(`{"EventName":"s3:ObjectCreated:Put","Key":"storagebucket/incoming/a b+c","Records":[
	 {"eventName":"s3:ObjectCreated:Put","s3":{"bucket":{"name":"storagebucket"},
	  "object":{"key":"incoming%2Fa+b%2Bc","size":68,"eTag":"44d88612fea8a8f36de82e1278abb02f","sequencer":"1898F6C2A3C1E2F0"}}}]}`)
	events, err := s3event.Parse(body)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, e := range events {
		fmt.Printf("%s %s/%q scan=%t\n", e.Type(), e.Bucket, e.Key, e.TriggersScan())
	}
	tag := events[0]
	tag.Name = "s3:ObjectCreated:PutTagging"
	fmt.Println(tag.Type(), "scan =", tag.TriggersScan())
	// Output:
	// s3:ObjectCreated:Put storagebucket/"incoming/a b+c" scan=true
	// s3:ObjectCreated:PutTagging scan = false
}
