from kafka import KafkaProducer
from kafka import KafkaConsumer

producer = KafkaProducer(bootstrap_servers='localhost:9092')
consumer = KafkaConsumer('test_topic', group_id='test_group', bootstrap_servers='localhost:9092')

# 发送消息
producer.send('test_topic', b'hello, kafka!')

# 接收消息
for msg in consumer:
    print(msg.value.decode())
