"""The seed example (shared/seed): kafka-python producer sends b'hello, kafka!' to test_topic;
a consumer in group 'test_group' prints what it receives.

Changes from the seed, all needed to run it unattended: the bootstrap address comes from argv,
the consumer starts from the earliest offset (auto_offset_reset='earliest'; the seed's consumer
would otherwise have to be assigned before the send), it stops after the first message, and
consumer_timeout_ms bounds the wait.

    python seed_example.py BOOTSTRAP
"""
import sys

from kafka import KafkaConsumer
from kafka import KafkaProducer

bootstrap = sys.argv[1]

producer = KafkaProducer(bootstrap_servers=bootstrap)
consumer = KafkaConsumer('test_topic', group_id='test_group', bootstrap_servers=bootstrap,
                         auto_offset_reset='earliest', consumer_timeout_ms=30000)

# 发送消息 (send a message)
producer.send('test_topic', b'hello, kafka!')

# 接收消息 (receive messages)
for msg in consumer:
    print(msg.value.decode(), flush=True)
    break
else:
    sys.exit("no message within consumer_timeout_ms")

producer.close(timeout=10)
consumer.close()
