"""Course notes, recurrent block (verbatim, seeds 003 lines 622-649)."""
import tensorflow as tf
from tensorflow.keras.models import Sequential
from tensorflow.keras.layers import SimpleRNN, LSTM, GRU

# 하이퍼파라미터
input_size = 10   # 입력 차원
hidden_size = 20  # 은닉 상태 차원
sequence_len = 5  # 시퀀스 길이
batch_size = 3    # 배치 크기

# 모델 생성 (선택)
model = Sequential([
    # SimpleRNN
    SimpleRNN(hidden_size, return_sequences=True, input_shape=(sequence_len, input_size)),
    
    # LSTM
    # LSTM(hidden_size, return_sequences=True),
    
    # GRU
    # GRU(hidden_size, return_sequences=True)
])

# 임의의 입력 데이터 생성
inputs = tf.random.normal((batch_size, sequence_len, input_size))

# 순방향 전파
outputs = model(inputs)
print("출력 크기:", outputs.shape)  # (batch, sequence, hidden)
