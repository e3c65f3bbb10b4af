package org.finetune.cli;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.Random;
import org.finetune.data.ImageOps;
import org.finetune.data.NpyArray;
import org.finetune.job.ModelFamily;
import org.finetune.model.KerasSavedModel;
import org.finetune.testing.Fixture;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * A whole-model training step of every keras.applications family (scripts/make_family_models.py
 * writes one random-weight model each): among them ConvNeXt's depthwise convolutions (Keras runs
 * them as grouped convolutions through XLA; finetune rewrites them, see GroupedConvolutionsTest),
 * MobileNetV3's hard-swish and squeeze-and-excitation, Xception's separable convolutions,
 * EfficientNetV2's fused blocks, NASNet's cells; and ResNet50, whose random-input loss
 * {@code check} cannot lower at any rate (its step is right: the loss is steep). One SGD step on
 * every variable from the CLI equals TensorFlow's step through the signature (within 1e-5, or
 * twice TensorFlow's own oneDNN-off-against-on spread where that is larger: MobileNetV2's step
 * moves its outputs by 0.94, and the order of float sums alone moves TensorFlow by ~2e-4).
 *
 * <p>The learning rate is 1e-3, small enough that these random-weight models' softmax does not
 * saturate in one step (where the outputs would no longer show how the weights moved); VGG19's
 * outputs move by only 1.9e-4 at 1e-3, too little to tell a step from none, so it steps at 0.1.
 *
 * <p>RegNetX002 is not here: with random weights its gradients are so large that a step of 1e-3
 * moves its outputs 87-fold and one of 1e-6 still by 0.45, so that the order of float sums (XLA's
 * grouped convolution against the rewrite: forward outputs agree to 1.2e-5 relative) decides the
 * result; its new-head training is in ApplicationFamiliesTest.
 */
class FamilyStepTest {
  @TempDir
  Path tmp;

  @ParameterizedTest
  @CsvSource({"ConvNeXtTiny, 0.001", "MobileNetV3Small, 0.001", "Xception, 0.001", "ResNet50, 0.001",
      "EfficientNetV2B0, 0.001", "VGG19, 0.1", "ResNet50V2, 0.001", "InceptionResNetV2, 0.001", "MobileNet, 0.001",
      "MobileNetV2, 0.001", "DenseNet121, 0.001", "NASNetMobile, 0.001"})
  void oneStepOfTheWholeModelEqualsTensorFlows(String constructor, String lr) throws IOException {
    Path model = Fixture.projectRoot().resolve("savedmodels/generated/families").resolve(constructor)
        .resolve("keras3_export");
    String input;
    long side;
    ImageOps.Preprocess preprocess;
    try (KerasSavedModel m = KerasSavedModel.open(model)) {
      var spec = m.info().selectedSignature().inputs().get(0);
      input = spec.key();
      side = spec.shape().get(1);
      preprocess = ModelFamily.detect(m).preprocess().orElseThrow();
    }
    int n = 4;
    int pixels = (int) (side * side * 3);
    ByteBuffer b = ByteBuffer.allocate(4 * n * pixels).order(ByteOrder.LITTLE_ENDIAN);
    Random random = new Random(5);
    for (int i = 0; i < n; i++) {
      float[] rgb = new float[pixels];
      for (int j = 0; j < pixels; j++) {
        rgb[j] = random.nextInt(256);
      }
      for (float v : ImageOps.preprocess(rgb, preprocess)) {
        b.putFloat(v);
      }
    }
    Path x = tmp.resolve("images.npy");
    new NpyArray("float32", new long[] {n, side, side, 3}, b.array()).write(x);
    float[] targets = new float[n * 3];
    for (int i = 0; i < targets.length; i++) {
      targets[i] = i % 3 == i / 3 % 3 ? 1f : 0f;
    }
    OneStepParity.check(tmp, model, input, x, targets, constructor, lr);
  }
}
