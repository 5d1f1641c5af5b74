"""Sources of the fused CUDA kernels: one launch where the NumPy form needs several.

``polydl.backend`` compiles them with CuPy (``backend.fused_kernel``, ``backend.raw_kernel``);
nothing here imports CuPy. Each kernel sits beside the NumPy form of the same computation (in
``optim`` and ``functional``) and is tested against it:

- ``ELEMENTWISE``: CuPy ``ElementwiseKernel`` sources, ``(in_params, out_params, body)``: the
  optimizer steps (SGD, momentum, RMSprop, Adam) over 1-D buffers with scalar coefficients or a
  population's (P, N) buffers with coefficient columns (P, 1), which broadcast; batch
  normalization in evaluation mode (optionally followed by ReLU); softmax cross-entropy's
  backward, (ŷ − onehot(y))·g/m; the convolutional ops' im2col, col2im and pooling kernels
  (their sources are in ``polydl.cuda_kernels_conv``).
- ``RAW``: CUDA C sources of ``RawKernel`` launches that reduce: batch normalization's training
  forward (μ, σ² per feature, the output, the running averages) and backward (Σg, Σg·x̂, dx), with
  the ReLU optionally fused, and softmax cross-entropy's forward (ŷ and the loss per member).
  ``raw_source(name, x_dtype, t_dtype)`` gives the source for one pair of dtypes: ``X`` is the
  activations' type (float16, bfloat16, float32 or float64), ``T`` the type of the parameters,
  the statistics and their sums (float32, or float64 for float64). Half values are stored as
  16-bit words and converted with the integer routines of ``PRELUDE`` (round to nearest even), so
  the sources need no CUDA header.

Batch normalization: a block of 32 × 16 threads handles 32 adjacent features of one member
(``blockIdx.y``); each thread sums every 16th row of its feature, the 16 partial sums are added
in shared memory (a tree, the same order on every run), and the same block then writes the
output. Sums are in ``T``: float32 for float32 and half inputs (as the NumPy form computes
them), float64 for float64. The mean and the variance take two passes over the batch (the
variance of x − μ, as the NumPy form), and the output a third; the block's rows stay in cache.

Softmax cross-entropy: one block of 256 threads per member, one thread per row (rows strided
by 256), the member's loss summed in float64 in shared memory. A label outside [0, C) gives a
NaN loss (checking it on the host would cost a synchronisation per step).
"""
from __future__ import annotations

import numpy as np

from .cuda_kernels_conv import ELEMENTWISE as _CONV_ELEMENTWISE

__all__ = ["ELEMENTWISE", "RAW", "PRELUDE", "BN_BLOCK", "SOFTMAX_BLOCK", "x_kind", "raw_source"]

#: threads per batch-normalization block: (features, row stripes)
BN_BLOCK = (32, 16, 1)
#: threads per softmax cross-entropy block (one block per member)
SOFTMAX_BLOCK = (256, 1, 1)

# ---------------------------------------------------------------------------- element-wise
# Each body is the NumPy form of the same op written per element, in its order of operations.
ELEMENTWISE = {
    # W ← W − α g
    "sgd": ("T g, T lr", "T p", "p -= g * lr;"),
    # v' ← β v' + g; W ← W − α(1 − β) v'
    "momentum": ("T g, T beta, T step_size", "T p, T v",
                 "v = v * beta + g; p -= v * step_size;"),
    # s' ← β s' + g²; W ← W − step · g/(√s' + ε̂)
    "rmsprop": ("T g, T beta, T step_size, T eps_hat", "T p, T s",
                "s = s * beta + g * g; p -= g / (sqrt(s) + eps_hat) * step_size;"),
    # m' ← β1 m' + g; v' ← β2 v' + g²; W ← W − step · m'/(√v' + ε̂)
    "adam": ("T g, T beta1, T beta2, T step_size, T eps_hat", "T p, T m, T v",
             "m = m * beta1 + g; v = v * beta2 + g * g; p -= m / (sqrt(v) + eps_hat) * step_size;"),
    # y = (x − μ)·γ/√(σ² + ε) + β with the running μ, σ²; relu: max(0, y) (NaN stays NaN)
    "bn_eval": ("X x, T mean, T var, T gamma, T beta, T eps, int32 relu", "X y",
                "T v = ((T)x - mean) * (gamma * ((T)1 / sqrt(var + eps))) + beta; "
                "if (relu && v <= (T)0) v = v - v; y = (X)v;"),
    # gz = (ŷ − onehot(y))·g_q/m over (P, m, C) (P = 1 for one model); i is the flat index
    "softmax_xent_backward": ("T p, raw L labels, raw T g, int64 m, int64 c, T inv_m", "O gz",
                              "const long long row = i / c; const long long j = i - row * c; "
                              "const long long q = row / m; const T s = g[q] * inv_m; "
                              "T v = p * s; if (j == (long long)labels[row - q * m]) v = (p - (T)1) * s; "
                              "gz = (O)v;"),
    **_CONV_ELEMENTWISE,  # im2col, col2im, max and average pooling (polydl.cuda_kernels_conv)
}

# ---------------------------------------------------------------------------- raw kernels
#: conversions between the storage type X and float, and the typedefs' companions
PRELUDE = r"""
__device__ __forceinline__ float polydl_half_to_float(unsigned short h) {
    // exponent and mantissa moved into place, then the exponent rebased (subnormals renormalised
    // by one float subtraction, infinities and NaNs kept)
    const unsigned int shifted_exp = 0x7c00u << 13;
    unsigned int u = ((unsigned int)h & 0x7fffu) << 13;
    const unsigned int exp = shifted_exp & u;
    u += (127u - 15u) << 23;
    float f;
    if (exp == shifted_exp) {
        u += (128u - 16u) << 23;
        f = __uint_as_float(u);
    } else if (exp == 0u) {
        u += 1u << 23;
        f = __uint_as_float(u) - __uint_as_float(113u << 23);
    } else {
        f = __uint_as_float(u);
    }
    return __uint_as_float(__float_as_uint(f) | (((unsigned int)h & 0x8000u) << 16));
}

__device__ __forceinline__ unsigned short polydl_float_to_half(float value) {
    // round to nearest even; overflow to ±inf, NaN to a quiet NaN, subnormals through one
    // float addition of a magic number (which rounds to nearest even)
    unsigned int u = __float_as_uint(value);
    const unsigned int sign = u & 0x80000000u;
    u ^= sign;
    unsigned int o;
    if (u >= ((127u + 16u) << 23)) {
        o = u > 0x7f800000u ? 0x7e00u : 0x7c00u;
    } else if (u < (113u << 23)) {
        const float magic = __uint_as_float(((127u - 15u) + (23u - 10u) + 1u) << 23);
        o = __float_as_uint(__uint_as_float(u) + magic) - __float_as_uint(magic);
    } else {
        const unsigned int mant_odd = (u >> 13) & 1u;
        u += ((unsigned int)(15 - 127) << 23) + 0xfffu;
        u += mant_odd;
        o = u >> 13;
    }
    return (unsigned short)(o | (sign >> 16));
}

__device__ __forceinline__ float polydl_bf16_to_float(unsigned short h) {
    return __uint_as_float(((unsigned int)h) << 16);
}

__device__ __forceinline__ unsigned short polydl_float_to_bf16(float value) {
    const unsigned int u = __float_as_uint(value);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40u);
    return (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

#if POLYDL_X_KIND == 1
typedef unsigned short X;
#define LOAD_X(v) ((T)polydl_half_to_float(v))
#define STORE_X(v) polydl_float_to_half((float)(v))
#elif POLYDL_X_KIND == 2
typedef unsigned short X;
#define LOAD_X(v) ((T)polydl_bf16_to_float(v))
#define STORE_X(v) polydl_float_to_bf16((float)(v))
#else
#define LOAD_X(v) ((T)(v))
#define STORE_X(v) ((X)(v))
#endif
"""

RAW = {
    "bn_forward_train": r"""
// x, out: (P, m, f), C order; gamma, beta: row p at p·stride; stats: (4, P, f) = μ, σ², 1/√(σ² + ε),
// γ/√(σ² + ε). running_*: row p at p·running_stride, updated when update_running.
extern "C" __global__ void polydl_bn_forward_train(
        const X* x, const T* gamma, const T* beta, long long m, long long f, long long gamma_stride,
        long long beta_stride, T inv_m, T eps, int relu, X* out, T* stats, T* running_mean,
        T* running_var, long long running_stride, T momentum, T one_minus_momentum, int update_running) {
    __shared__ T red[BY][BX];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const long long p = blockIdx.y;
    const long long j = (long long)blockIdx.x * BX + tx;
    const bool active = j < f;
    const X* xp = x + p * m * f;
    X* op = out + p * m * f;

    T s = (T)0;
    if (active) {
        for (long long i = ty; i < m; i += BY) s += LOAD_X(xp[i * f + j]);
    }
    red[ty][tx] = s;
    __syncthreads();
    for (int k = BY / 2; k > 0; k >>= 1) {
        if (ty < k) red[ty][tx] += red[ty + k][tx];
        __syncthreads();
    }
    const T mu = red[0][tx] * inv_m;
    __syncthreads();  // every thread has read the sum before red is reused

    T s2 = (T)0;
    if (active) {
        for (long long i = ty; i < m; i += BY) {
            const T d = LOAD_X(xp[i * f + j]) - mu;
            s2 += d * d;
        }
    }
    red[ty][tx] = s2;
    __syncthreads();
    for (int k = BY / 2; k > 0; k >>= 1) {
        if (ty < k) red[ty][tx] += red[ty + k][tx];
        __syncthreads();
    }
    const T var = red[0][tx] * inv_m;
    if (!active) return;  // no barrier follows

    const T inv_std = (T)1 / sqrt(var + eps);
    const T scale = gamma[p * gamma_stride + j] * inv_std;
    const T b = beta[p * beta_stride + j];
    if (ty == 0) {
        const long long pf = (long long)gridDim.y * f;
        stats[p * f + j] = mu;
        stats[pf + p * f + j] = var;
        stats[2 * pf + p * f + j] = inv_std;
        stats[3 * pf + p * f + j] = scale;
        if (update_running) {
            const long long r = p * running_stride + j;
            running_mean[r] = running_mean[r] * momentum + one_minus_momentum * mu;
            running_var[r] = running_var[r] * momentum + one_minus_momentum * var;
        }
    }
    for (long long i = ty; i < m; i += BY) {
        T v = (LOAD_X(xp[i * f + j]) - mu) * scale + b;
        if (relu && v <= (T)0) v = v - v;  // +0, and NaN stays NaN
        op[i * f + j] = STORE_X(v);
    }
}
""",
    "bn_backward_train": r"""
// g, x, out, gx: (P, m, f), C order; stats: (4, P, f) from the forward kernel; grads: (2, P, f) =
// Σ g·x̂ (dγ), Σ g (dβ). With relu, g is first multiplied by [out > 0] (out: the fused output).
// gx = γ/√(σ² + ε) · (g − x̂·Σ(g·x̂)/m − Σg/m), written when want_gx.
extern "C" __global__ void polydl_bn_backward_train(
        const X* g, const X* x, const X* out, const T* stats, long long m, long long f, T inv_m,
        int relu, int want_gx, X* gx, T* grads) {
    __shared__ T red_g[BY][BX];
    __shared__ T red_gx[BY][BX];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const long long p = blockIdx.y;
    const long long j = (long long)blockIdx.x * BX + tx;
    const bool active = j < f;
    const long long pf = (long long)gridDim.y * f;
    const long long base = p * m * f;
    const T mu = active ? stats[p * f + j] : (T)0;

    T sg = (T)0, sgx = (T)0;
    if (active) {
        for (long long i = ty; i < m; i += BY) {
            const long long k = base + i * f + j;
            T gv = LOAD_X(g[k]);
            if (relu && !(LOAD_X(out[k]) > (T)0)) gv = gv - gv;  // 0, NaN for ±inf or NaN (as g·0)
            sg += gv;
            sgx += gv * (LOAD_X(x[k]) - mu);
        }
    }
    red_g[ty][tx] = sg;
    red_gx[ty][tx] = sgx;
    __syncthreads();
    for (int k = BY / 2; k > 0; k >>= 1) {
        if (ty < k) {
            red_g[ty][tx] += red_g[ty + k][tx];
            red_gx[ty][tx] += red_gx[ty + k][tx];
        }
        __syncthreads();
    }
    if (!active) return;  // no barrier follows

    const T inv_std = stats[2 * pf + p * f + j];
    const T scale = stats[3 * pf + p * f + j];
    const T gbeta = red_g[0][tx];
    const T ggamma = red_gx[0][tx] * inv_std;
    if (ty == 0) {
        grads[p * f + j] = ggamma;
        grads[pf + p * f + j] = gbeta;
    }
    if (!want_gx) return;
    const T k1 = ggamma * inv_std * inv_m;
    const T k2 = gbeta * inv_m;
    for (long long i = ty; i < m; i += BY) {
        const long long k = base + i * f + j;
        T gv = LOAD_X(g[k]);
        if (relu && !(LOAD_X(out[k]) > (T)0)) gv = gv - gv;
        gx[k] = STORE_X(((gv - (LOAD_X(x[k]) - mu) * k1) - k2) * scale);
    }
}
""",
    "softmax_xent": r"""
// z: (P, m, c), C order; labels: (m,) shared by the members; p: (P, m, c) = ŷ; loss: (P,) =
// (1/m) Σᵢ (log Σⱼ exp zᵢⱼ − zᵢ,yᵢ), NaN where a label is outside [0, c).
extern "C" __global__ void polydl_softmax_xent(
        const X* z, const long long* labels, long long m, long long c, double inv_m, T* p, T* loss) {
    __shared__ double red[NT];
    const int t = threadIdx.x;
    const long long q = blockIdx.x;
    double acc = 0.0;
    for (long long i = t; i < m; i += NT) {
        const X* zr = z + (q * m + i) * c;
        T* pr = p + (q * m + i) * c;
        T zmax = LOAD_X(zr[0]);
        for (long long j = 1; j < c; ++j) {
            const T v = LOAD_X(zr[j]);
            if (v > zmax) zmax = v;
        }
        T s = (T)0;
        for (long long j = 0; j < c; ++j) {
            const T e = exp(LOAD_X(zr[j]) - zmax);
            pr[j] = e;
            s += e;
        }
        for (long long j = 0; j < c; ++j) pr[j] = pr[j] / s;
        const long long y = labels[i];
        if (y >= 0 && y < c) {
            acc += (double)(log(s) + zmax) - (double)LOAD_X(zr[y]);
        } else {
            acc += __longlong_as_double(0x7ff8000000000000LL);  // NaN
        }
    }
    red[t] = acc;
    __syncthreads();
    for (int k = NT / 2; k > 0; k >>= 1) {
        if (t < k) red[t] += red[t + k];
        __syncthreads();
    }
    if (t == 0) loss[q] = (T)(red[0] * inv_m);
}
""",
}

_C_TYPES = {"float32": "float", "float64": "double"}
_X_KINDS = {"float16": 1, "bfloat16": 2}


def x_kind(dtype) -> int:
    """0 for float32/float64 activations, 1 for float16, 2 for bfloat16 (stored as 16-bit words)."""
    return _X_KINDS.get(np.dtype(dtype).name, 0)


def raw_source(name: str, x_dtype, t_dtype) -> str:
    """The CUDA C source of raw kernel ``name`` for activations of ``x_dtype`` and parameters
    (and sums) of ``t_dtype`` (float32 or float64; half activations need float32)."""
    x_dtype, t_dtype = np.dtype(x_dtype), np.dtype(t_dtype)
    t = _C_TYPES.get(t_dtype.name)
    kind = x_kind(x_dtype)
    if t is None or (kind == 0 and x_dtype != t_dtype) or (kind and t != "float"):
        raise ValueError(f"no CUDA kernel {name} for {x_dtype} activations with {t_dtype} parameters")
    bx, by, _ = BN_BLOCK
    head = [f"#define POLYDL_X_KIND {kind}", f"typedef {t} T;"]
    if kind == 0:
        head.append(f"typedef {t} X;")
    head += [f"#define BX {bx}", f"#define BY {by}", f"#define NT {SOFTMAX_BLOCK[0]}"]
    return "\n".join(head) + "\n" + PRELUDE + RAW[name]
