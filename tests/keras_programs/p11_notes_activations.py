"""Course notes, activation block (verbatim, seeds 003 lines 223-245)."""
import tensorflow as tf
from tensorflow.keras.models import Sequential
from tensorflow.keras.layers import Dense, Activation, Flatten

# 방법 1: Dense 레이어의 activation 인수로 지정
model_method1 = Sequential([
    Flatten(input_shape=(28, 28)),
    Dense(128, activation='relu'),
    Dense(10, activation='softmax')
])
print("--- Method 1 (activation argument) ---")
model_method1.summary()

# 방법 2: 별도의 Activation 레이어 추가
model_method2 = Sequential([
    Flatten(input_shape=(28, 28)),
    Dense(128),
    Activation('relu'),
    Dense(10),
    Activation('softmax')
])
print("\n--- Method 2 (separate Activation layer) ---")
model_method2.summary()
