package notify

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/lazaret/lazaret/internal/testenv"
)

func TestAMQPPublisher(t *testing.T) {
	u := testenv.AMQP(t)
	ex := fmt.Sprintf("lz-results-%d-%d", os.Getpid(), time.Now().UnixNano())
	p, err := NewAMQPPublisher(u, ex)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	// The exchange is declared on first use; bind a queue to infected results.
	if err := p.Publish(ctx, ResultsSubject("", "clean"), "warmup", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	conn, err := amqp.Dial(u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, _ := conn.Channel()
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q.Name, "lazaret.results.infected", ex, false, nil); err != nil {
		t.Fatal(err)
	}
	defer ch.ExchangeDelete(ex, false, false)
	for _, v := range []string{"clean", "infected"} {
		if err := p.Publish(ctx, ResultsSubject("", v), "d-"+v, []byte(`{"verdict":"`+v+`"}`)); err != nil {
			t.Fatal(err)
		}
	}
	msgs, _ := ch.Consume(q.Name, "", true, true, false, false, nil)
	select {
	case m := <-msgs:
		if m.MessageId != "d-infected" || string(m.Body) != `{"verdict":"infected"}` || m.DeliveryMode != amqp.Persistent {
			t.Errorf("got %+v", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no infected result arrived")
	}
	select {
	case m := <-msgs:
		t.Errorf("a clean result reached the infected binding: %s", m.Body)
	case <-time.After(200 * time.Millisecond):
	}
}

func TestNATSPublisher(t *testing.T) {
	u := testenv.NATS(t)
	p, err := NewNATSPublisher(u)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	nc, err := nats.Connect(u)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	prefix := fmt.Sprintf("lz.results.%d%d", os.Getpid(), time.Now().UnixNano())
	sub, err := nc.SubscribeSync(prefix + ".*")
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	if err := p.Publish(context.Background(), ResultsSubject(prefix, "infected"), "d1", []byte("x")); err != nil {
		t.Fatal(err)
	}
	m, err := sub.NextMsg(5 * time.Second)
	if err != nil || m.Subject != prefix+".infected" || m.Header.Get(nats.MsgIdHdr) != "d1" {
		t.Errorf("got %+v, %v", m, err)
	}
}

func TestAMQPPublisherRedactsPassword(t *testing.T) {
	p, _ := NewAMQPPublisher("amqp://u:hunter2@127.0.0.1:1/", "x")
	err := p.Publish(context.Background(), "s", "id", nil)
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("got %v", err)
	}
}
