package org.finetune.graph;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.api.Test;
import org.tensorflow.Graph;
import org.tensorflow.Output;
import org.tensorflow.Result;
import org.tensorflow.Session;
import org.tensorflow.ndarray.Shape;
import org.tensorflow.ndarray.StdArrays;
import org.tensorflow.op.Ops;
import org.tensorflow.op.core.Placeholder;
import org.tensorflow.types.TFloat64;

/** Every gradient we register agrees with central finite differences (float64). */
class CustomGradientsTest {
  @Test
  void sparseSoftmaxCrossEntropyGradientMatchesFiniteDifferences() {
    CustomGradients.ensureRegistered();
    int rows = 3;
    int classes = 5;
    Random random = new Random(7);
    double[][] x = new double[rows][classes];
    for (double[] row : x) {
      for (int j = 0; j < classes; j++) {
        row[j] = random.nextGaussian() * 2;
      }
    }
    int[] labels = {1, 4, 0};
    double[] weights = {0.5, -1.25, 2.0};
    try (Graph g = new Graph(); Session s = new Session(g)) {
      Ops tf = Ops.create(g);
      Placeholder<TFloat64> logits = tf.placeholder(TFloat64.class, Placeholder.shape(Shape.of(rows, classes)));
      // A weighted sum, so each row's incoming gradient differs.
      var ce = tf.nn.sparseSoftmaxCrossEntropyWithLogits(logits, tf.constant(labels)).loss();
      var loss = tf.reduceSum(tf.math.mul(ce, tf.constant(weights)), tf.constant(0));
      Output<?>[] grad = g.addGradients(loss.asOutput(), new Output<?>[] {logits.asOutput()});
      double[][] analytic = new double[rows][classes];
      try (TFloat64 in = TFloat64.tensorOf(StdArrays.ndCopyOf(x));
          Result r = s.runner().feed(logits, in).fetch(grad[0]).run()) {
        TFloat64 t = (TFloat64) r.get(0);
        for (int i = 0; i < rows; i++) {
          for (int j = 0; j < classes; j++) {
            analytic[i][j] = t.getDouble(i, j);
          }
        }
      }
      double h = 1e-6;
      double worst = 0;
      for (int i = 0; i < rows; i++) {
        for (int j = 0; j < classes; j++) {
          double[][] plus = copy(x);
          double[][] minus = copy(x);
          plus[i][j] += h;
          minus[i][j] -= h;
          double numeric = (eval(s, logits, loss, plus) - eval(s, logits, loss, minus)) / (2 * h);
          worst = Math.max(worst, Math.abs(numeric - analytic[i][j]));
        }
      }
      System.out.println("SparseSoftmaxCrossEntropyWithLogits: max |analytic - finite difference| = " + worst);
      assertTrue(worst < 1e-7, "gradient off by " + worst);
    }
  }

  private static double eval(Session s, Placeholder<TFloat64> logits, org.tensorflow.Operand<TFloat64> loss,
      double[][] x) {
    try (TFloat64 in = TFloat64.tensorOf(StdArrays.ndCopyOf(x));
        Result r = s.runner().feed(logits, in).fetch(loss).run()) {
      return ((TFloat64) r.get(0)).getDouble();
    }
  }

  private static double[][] copy(double[][] x) {
    double[][] c = new double[x.length][];
    for (int i = 0; i < x.length; i++) {
      c[i] = x[i].clone();
    }
    return c;
  }
}
