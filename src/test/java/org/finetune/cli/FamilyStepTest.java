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
 * NASNet's cells; and ResNet50, whose random-input loss
 * {@code check} cannot lower at any rate (its step is right: the loss is steep). One SGD step on
 * every variable from the CLI equals TensorFlow's step through the signature (within 1e-5, or
 * twice TensorFlow's own oneDNN-off-against-on spread where that is larger: MobileNetV2's step
 * moves its outputs by 0.94, and the order of float sums alone moves TensorFlow by ~2e-4).
 *
 * <p>The learning rate is 1e-3, small enough that these random-weight models' softmax does not
 * saturate in one step (where the outputs would no longer show how the weights moved); VGG19's
 * outputs move by only 1.9e-4 at 1e-3, too little to tell a step from none, so it steps at 0.1.
 *
 * <p>RegNetX002's random-weight gradients are so large that a step of 1e-3 moves its outputs
 * 200-fold; the order of float sums then shows (XLA's grouped convolution against finetune's
 * rewrite: forward outputs agree to 1.2e-5 relative), and TensorFlow's own step moves by 3e-5
 * between its kernel libraries, which the floor above takes in.
 *
 * <p>EfficientNetV2B0 is not here: with random weights a step of 1e-5 already saturates its
 * softmax (the outputs move by 1.02), and TensorFlow's own step disagrees with itself: with oneDNN
 * off it makes the outputs NaN at 1e-4 and 1e-3, and its stem_conv kernel after the step differs
 * between the two kernel libraries by 1.1 relative at 1e-5 and 0.99 at 1e-3. No comparison with it
 * can mean anything; check (gradients reach every layer; steps of 1e-4 and below stay finite,
 * though none lowers its random-input loss) and ApplicationFamiliesTest (a new head on
 * top_activation trains) cover it.
 */
class FamilyStepTest {
  @TempDir
  Path tmp;

  @ParameterizedTest
  @CsvSource({"ConvNeXtTiny, 0.001", "MobileNetV3Small, 0.001", "Xception, 0.001", "ResNet50, 0.001",
      "VGG19, 0.1", "ResNet50V2, 0.001", "InceptionResNetV2, 0.001", "MobileNet, 0.001",
      "MobileNetV2, 0.001", "DenseNet121, 0.001", "NASNetMobile, 0.001", "RegNetX002, 0.001"})
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
