using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;

namespace ManagedDisks.Encryption;

/// <summary>SubBytes and its inverse for <see cref="BitslicedAes"/>, as a Boolean circuit.</summary>
internal static unsafe partial class BitslicedAes
{
    /// <summary>
    /// InvSubBytes without a second circuit: S⁻¹ = L ∘ S ∘ L, where L(x) = A⁻¹·x ⊕ 0x05 undoes the
    /// S-box's affine step (b_i = b'_{i+2} ⊕ b'_{i+5} ⊕ b'_{i+7} ⊕ d_i, d = 0x05).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void InvSubBytes(ref BitslicedState s)
    {
        InverseAffine(ref s);
        SubBytes(ref s);
        InverseAffine(ref s);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void InverseAffine(ref BitslicedState s)
    {
        ulong q0 = s.Q0, q1 = s.Q1, q2 = s.Q2, q3 = s.Q3, q4 = s.Q4, q5 = s.Q5, q6 = s.Q6, q7 = s.Q7;
        s.Q0 = ~(q2 ^ q5 ^ q7);
        s.Q1 = q3 ^ q6 ^ q0;
        s.Q2 = ~(q4 ^ q7 ^ q1);
        s.Q3 = q5 ^ q0 ^ q2;
        s.Q4 = q6 ^ q1 ^ q3;
        s.Q5 = q7 ^ q2 ^ q4;
        s.Q6 = q0 ^ q3 ^ q5;
        s.Q7 = q1 ^ q4 ^ q6;
    }

    /// <summary>SubWord (FIPS-197 5.2) of one key word, through the same constant-time circuit.</summary>
    private static uint SubWord(uint word)
    {
        byte* blocks = stackalloc byte[64];
        new Span<byte>(blocks, 64).Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(new Span<byte>(blocks, 4), word);
        BitslicedState s = default;
        Load(blocks, ref s);
        SubBytes(ref s);
        Store(ref s, blocks);
        uint result = BinaryPrimitives.ReadUInt32LittleEndian(new ReadOnlySpan<byte>(blocks, 4));
        CryptographicOperations.ZeroMemory(new Span<byte>(blocks, 64));
        return result;
    }

    /// <summary>
    /// The AES S-box on all 64 bytes: Boyar and Peralta's circuit, a top linear layer, a shared
    /// GF(2^4)-tower inversion (the only AND gates), and a bottom linear layer that includes the
    /// affine constant 0x63 (the XNORs). Their x0 is the most significant bit, so x0 = Q7.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void SubBytes(ref BitslicedState s)
    {
        ulong x0 = s.Q7, x1 = s.Q6, x2 = s.Q5, x3 = s.Q4, x4 = s.Q3, x5 = s.Q2, x6 = s.Q1, x7 = s.Q0;

        // Top linear transformation.
        ulong y14 = x3 ^ x5;
        ulong y13 = x0 ^ x6;
        ulong y9 = x0 ^ x3;
        ulong y8 = x0 ^ x5;
        ulong t0 = x1 ^ x2;
        ulong y1 = t0 ^ x7;
        ulong y4 = y1 ^ x3;
        ulong y12 = y13 ^ y14;
        ulong y2 = y1 ^ x0;
        ulong y5 = y1 ^ x6;
        ulong y3 = y5 ^ y8;
        ulong t1 = x4 ^ y12;
        ulong y15 = t1 ^ x5;
        ulong y20 = t1 ^ x1;
        ulong y6 = y15 ^ x7;
        ulong y10 = y15 ^ t0;
        ulong y11 = y20 ^ y9;
        ulong y7 = x7 ^ y11;
        ulong y17 = y10 ^ y11;
        ulong y19 = y10 ^ y8;
        ulong y16 = t0 ^ y11;
        ulong y21 = y13 ^ y16;
        ulong y18 = x0 ^ y16;

        // Middle, non-linear: inversion in GF(2^8) through GF(2^4).
        ulong t2 = y12 & y15;
        ulong t3 = y3 & y6;
        ulong t4 = t3 ^ t2;
        ulong t5 = y4 & x7;
        ulong t6 = t5 ^ t2;
        ulong t7 = y13 & y16;
        ulong t8 = y5 & y1;
        ulong t9 = t8 ^ t7;
        ulong t10 = y2 & y7;
        ulong t11 = t10 ^ t7;
        ulong t12 = y9 & y11;
        ulong t13 = y14 & y17;
        ulong t14 = t13 ^ t12;
        ulong t15 = y8 & y10;
        ulong t16 = t15 ^ t12;
        ulong t17 = t4 ^ t14;
        ulong t18 = t6 ^ t16;
        ulong t19 = t9 ^ t14;
        ulong t20 = t11 ^ t16;
        ulong t21 = t17 ^ y20;
        ulong t22 = t18 ^ y19;
        ulong t23 = t19 ^ y21;
        ulong t24 = t20 ^ y18;

        ulong t25 = t21 ^ t22;
        ulong t26 = t21 & t23;
        ulong t27 = t24 ^ t26;
        ulong t28 = t25 & t27;
        ulong t29 = t28 ^ t22;
        ulong t30 = t23 ^ t24;
        ulong t31 = t22 ^ t26;
        ulong t32 = t31 & t30;
        ulong t33 = t32 ^ t24;
        ulong t34 = t23 ^ t33;
        ulong t35 = t27 ^ t33;
        ulong t36 = t24 & t35;
        ulong t37 = t36 ^ t34;
        ulong t38 = t27 ^ t36;
        ulong t39 = t29 & t38;
        ulong t40 = t25 ^ t39;

        ulong t41 = t40 ^ t37;
        ulong t42 = t29 ^ t33;
        ulong t43 = t29 ^ t40;
        ulong t44 = t33 ^ t37;
        ulong t45 = t42 ^ t41;
        ulong z0 = t44 & y15;
        ulong z1 = t37 & y6;
        ulong z2 = t33 & x7;
        ulong z3 = t43 & y16;
        ulong z4 = t40 & y1;
        ulong z5 = t29 & y7;
        ulong z6 = t42 & y11;
        ulong z7 = t45 & y17;
        ulong z8 = t41 & y10;
        ulong z9 = t44 & y12;
        ulong z10 = t37 & y3;
        ulong z11 = t33 & y4;
        ulong z12 = t43 & y13;
        ulong z13 = t40 & y5;
        ulong z14 = t29 & y2;
        ulong z15 = t42 & y9;
        ulong z16 = t45 & y14;
        ulong z17 = t41 & y8;

        // Bottom linear transformation (with the affine constant as XNORs).
        ulong t46 = z15 ^ z16;
        ulong t47 = z10 ^ z11;
        ulong t48 = z5 ^ z13;
        ulong t49 = z9 ^ z10;
        ulong t50 = z2 ^ z12;
        ulong t51 = z2 ^ z5;
        ulong t52 = z7 ^ z8;
        ulong t53 = z0 ^ z3;
        ulong t54 = z6 ^ z7;
        ulong t55 = z16 ^ z17;
        ulong t56 = z12 ^ t48;
        ulong t57 = t50 ^ t53;
        ulong t58 = z4 ^ t46;
        ulong t59 = z3 ^ t54;
        ulong t60 = t46 ^ t57;
        ulong t61 = z14 ^ t57;
        ulong t62 = t52 ^ t58;
        ulong t63 = t49 ^ t58;
        ulong t64 = z4 ^ t59;
        ulong t65 = t61 ^ t62;
        ulong t66 = z1 ^ t63;
        ulong s0 = t59 ^ t63;
        ulong s6 = ~(t56 ^ t62);
        ulong s7 = ~(t48 ^ t60);
        ulong t67 = t64 ^ t65;
        ulong s3 = t53 ^ t66;
        ulong s4 = t51 ^ t66;
        ulong s5 = t47 ^ t65;
        ulong s1 = ~(t64 ^ s3);
        ulong s2 = ~(t55 ^ t67);

        s.Q7 = s0; s.Q6 = s1; s.Q5 = s2; s.Q4 = s3;
        s.Q3 = s4; s.Q2 = s5; s.Q1 = s6; s.Q0 = s7;
    }
}
