//! NATS events: subjects, typed publish, queue consumers, JetStream.
