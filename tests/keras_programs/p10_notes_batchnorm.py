"""Course notes, batch normalization block (verbatim, seeds 003 lines 92-143)."""
import tensorflow as tf
from tensorflow.keras.models import Sequential
from tensorflow.keras.layers import Dense, BatchNormalization, Flatten

# 1. 모델 정의
# Sequential API를 사용하여 순차적인 모델을 생성합니다.
model = Sequential()

# Flatten 레이어는 입력 데이터(이미지 등)를 1차원 배열로 변환합니다.
# 이 예시에서는 MNIST 데이터셋을 가정합니다.
model.add(Flatten(input_shape=(28, 28)))

# 첫 번째 Dense 레이어 (512개의 뉴런)
# 배치 정규화의 오프셋(offset) 값이 편향(bias)의 역할을 하므로,
# use_bias=False로 설정하여 편향을 비활성화할 수 있습니다.
model.add(Dense(512, use_bias=False))

# 배치 정규화 레이어 추가
# Dense 레이어와 활성화 함수 사이에 배치 정규화를 추가하는 것이 일반적입니다.
model.add(BatchNormalization())

# 활성화 함수 (ReLU)
model.add(tf.keras.layers.Activation('relu'))

# 두 번째 Dense 레이어 (128개의 뉴런)
model.add(Dense(128, use_bias=False))

# 배치 정규화 레이어 추가
model.add(BatchNormalization())

# 활성화 함수 (ReLU)
model.add(tf.keras.layers.Activation('relu'))

# 출력 레이어 (10개의 클래스, MNIST 데이터셋을 가정)
model.add(Dense(10, activation='softmax'))

# 2. 모델 요약
# 모델의 구조를 확인하여 각 레이어와 학습 가능한 파라미터 수를 볼 수 있습니다.
model.summary()

# 3. 모델 컴파일
# 모델을 훈련하기 전에 손실 함수, 옵티마이저, 지표 등을 설정합니다.
model.compile(optimizer='adam',
              loss='sparse_categorical_crossentropy',
              metrics=['accuracy'])

# 4. (선택 사항) 데이터 로드 및 훈련
# 실제 훈련을 위해서는 훈련 데이터와 검증 데이터가 필요합니다.
# 이 코드는 개념 설명만을 위한 것이므로 실제 훈련은 생략합니다.
# 예시:
# (x_train, y_train), (x_test, y_test) = tf.keras.datasets.mnist.load_data()
# model.fit(x_train, y_train, epochs=10, validation_data=(x_test, y_test))
