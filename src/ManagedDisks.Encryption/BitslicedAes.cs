using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Security.Cryptography;

namespace ManagedDisks.Encryption;

/// <summary>
/// Four AES blocks, bitsliced: <see cref="Q0"/>..<see cref="Q7"/> hold bit 0..7 of all 64 bytes.
/// Byte (row r, column c) of block n (FIPS-197 3.4: input byte 4c + r) sits at bit 16r + 4c + n,
/// so a row of the four blocks is one 16-bit lane, a column one nibble inside it.
/// </summary>
internal struct BitslicedState
{
    public ulong Q0, Q1, Q2, Q3, Q4, Q5, Q6, Q7;
}

/// <summary>
/// Constant-time software AES-256 (FIPS-197), four blocks at once, for CPUs without AES-NI.
/// There are no table lookups and no branches on data or keys: SubBytes is Boyar and Peralta's
/// S-box circuit of 32 AND and about 80 XOR/XNOR gates ("A new combinational logic minimization
/// technique with applications to cryptology", SEA 2010; eprint 2009/191; see BitslicedAes.SBox.cs)
/// evaluated on 64 bytes at a time, and ShiftRows/MixColumns are shifts and rotations of the bit
/// planes, so timing and cache traces do not depend on secrets (table AES, such as BouncyCastle's
/// AesEngine, leaks its key through the cache).
/// </summary>
internal static unsafe partial class BitslicedAes
{
    public const int Rounds = 14;

    /// <summary>ulongs per bitsliced round key; a schedule is 15 of them.</summary>
    public const int RoundKeyWords = 8;

    public const int ScheduleWords = (Rounds + 1) * RoundKeyWords;

    /// <summary>Encrypts the four blocks in <paramref name="state"/> with a <see cref="ExpandKey"/> schedule.</summary>
    public static void Encrypt(ref BitslicedState state, ulong* schedule)
    {
        BitslicedState s = state; // a local, so the JIT can keep the planes in registers
        AddRoundKey(ref s, schedule);
        for (int r = 1; r < Rounds; r++)
        {
            SubBytes(ref s);
            ShiftRows(ref s);
            MixColumns(ref s);
            AddRoundKey(ref s, schedule + r * RoundKeyWords);
        }
        SubBytes(ref s);
        ShiftRows(ref s);
        AddRoundKey(ref s, schedule + Rounds * RoundKeyWords);
        state = s;
    }

    /// <summary>The inverse cipher (FIPS-197 5.3), from the same schedule as encryption.</summary>
    public static void Decrypt(ref BitslicedState state, ulong* schedule)
    {
        BitslicedState s = state;
        AddRoundKey(ref s, schedule + Rounds * RoundKeyWords);
        for (int r = Rounds - 1; r > 0; r--)
        {
            InvShiftRows(ref s);
            InvSubBytes(ref s);
            AddRoundKey(ref s, schedule + r * RoundKeyWords);
            InvMixColumns(ref s);
        }
        InvShiftRows(ref s);
        InvSubBytes(ref s);
        AddRoundKey(ref s, schedule);
        state = s;
    }

    /// <summary>
    /// AES-256 key expansion (FIPS-197 5.2) into <see cref="ScheduleWords"/> ulongs: each round
    /// key bitsliced and repeated for all four block positions. SubWord goes through the same
    /// constant-time S-box circuit; the word temporaries are zeroed before returning.
    /// </summary>
    public static void ExpandKey(ReadOnlySpan<byte> key, ulong* schedule)
    {
        if (key.Length != 32) throw new ArgumentException("AES-256 takes a 32-byte key.", nameof(key));
        Span<uint> w = stackalloc uint[4 * (Rounds + 1)];
        byte* blocks = stackalloc byte[64];
        BitslicedState s = default;
        try
        {
            for (int i = 0; i < 8; i++) w[i] = BinaryPrimitives.ReadUInt32LittleEndian(key[(4 * i)..]);
            uint rcon = 1;
            for (int i = 8; i < w.Length; i++)
            {
                uint t = w[i - 1];
                if (i % 8 == 0)
                {
                    // RotWord moves byte 1 to byte 0; with byte 0 least significant that is a right rotation.
                    t = SubWord(BitOperations.RotateRight(t, 8)) ^ rcon;
                    rcon <<= 1; // AES-256 needs only 0x01..0x40: no reduction
                }
                else if (i % 8 == 4)
                {
                    t = SubWord(t);
                }
                w[i] = w[i - 8] ^ t;
            }

            for (int r = 0; r <= Rounds; r++)
            {
                for (int n = 0; n < 4; n++)
                for (int c = 0; c < 4; c++)
                    BinaryPrimitives.WriteUInt32LittleEndian(new Span<byte>(blocks + 16 * n + 4 * c, 4), w[4 * r + c]);
                Load(blocks, ref s);
                ulong* rk = schedule + r * RoundKeyWords;
                rk[0] = s.Q0; rk[1] = s.Q1; rk[2] = s.Q2; rk[3] = s.Q3;
                rk[4] = s.Q4; rk[5] = s.Q5; rk[6] = s.Q6; rk[7] = s.Q7;
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(MemoryMarshal.AsBytes(w));
            CryptographicOperations.ZeroMemory(new Span<byte>(blocks, 64));
            s = default;
        }
    }

    /// <summary>Bitslices 64 bytes (four consecutive blocks) into <paramref name="s"/>.</summary>
    public static void Load(byte* blocks, ref BitslicedState s)
    {
        // Word n (n < 4) gathers columns 0 and 2 of block n, word 4 + n columns 1 and 3, bytes
        // interleaved; after the 8x8 bit transpose, byte (r, c) of block n lands at bit
        // 8 * (2r + (c >> 1)) + 4 * (c & 1) + n = 16r + 4c + n.
        s.Q0 = Gather(blocks, 0, 2);
        s.Q1 = Gather(blocks + 16, 0, 2);
        s.Q2 = Gather(blocks + 32, 0, 2);
        s.Q3 = Gather(blocks + 48, 0, 2);
        s.Q4 = Gather(blocks, 1, 3);
        s.Q5 = Gather(blocks + 16, 1, 3);
        s.Q6 = Gather(blocks + 32, 1, 3);
        s.Q7 = Gather(blocks + 48, 1, 3);
        Transpose(ref s);
    }

    /// <summary>The inverse of <see cref="Load"/>.</summary>
    public static void Store(ref BitslicedState s, byte* blocks)
    {
        BitslicedState t = s;
        Transpose(ref t);
        Scatter(t.Q0, blocks, 0, 2);
        Scatter(t.Q1, blocks + 16, 0, 2);
        Scatter(t.Q2, blocks + 32, 0, 2);
        Scatter(t.Q3, blocks + 48, 0, 2);
        Scatter(t.Q4, blocks, 1, 3);
        Scatter(t.Q5, blocks + 16, 1, 3);
        Scatter(t.Q6, blocks + 32, 1, 3);
        Scatter(t.Q7, blocks + 48, 1, 3);
    }

    /// <summary>Columns <paramref name="even"/> and <paramref name="odd"/> of a block, byte-interleaved.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Gather(byte* block, int even, int odd) =>
        Spread(ReadColumn(block, even)) | (Spread(ReadColumn(block, odd)) << 8);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Scatter(ulong word, byte* block, int even, int odd)
    {
        WriteColumn(block, even, Compact(word));
        WriteColumn(block, odd, Compact(word >> 8));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint ReadColumn(byte* block, int column) =>
        BinaryPrimitives.ReadUInt32LittleEndian(new ReadOnlySpan<byte>(block + 4 * column, 4));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void WriteColumn(byte* block, int column, uint value) =>
        BinaryPrimitives.WriteUInt32LittleEndian(new Span<byte>(block + 4 * column, 4), value);

    /// <summary>Byte i of <paramref name="x"/> to byte 2i of the result.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Spread(uint x)
    {
        ulong y = x;
        y = (y | (y << 16)) & 0x0000_FFFF_0000_FFFFUL;
        return (y | (y << 8)) & 0x00FF_00FF_00FF_00FFUL;
    }

    /// <summary>Byte 2i of <paramref name="y"/> to byte i of the result; odd bytes are ignored.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static uint Compact(ulong y)
    {
        y &= 0x00FF_00FF_00FF_00FFUL;
        y = (y | (y >> 8)) & 0x0000_FFFF_0000_FFFFUL;
        return (uint)(y | (y >> 16));
    }

    /// <summary>
    /// Transposes the 8x8 bit matrix in each byte lane across the eight words: afterwards word b,
    /// bit 8j + k is what was bit 8j + b of word k. Its own inverse. Three rounds of delta swaps
    /// exchange one bit of the word index with one bit of the position each.
    /// </summary>
    private static void Transpose(ref BitslicedState s)
    {
        SwapBits(ref s.Q0, ref s.Q1, 0x5555_5555_5555_5555UL, 1);
        SwapBits(ref s.Q2, ref s.Q3, 0x5555_5555_5555_5555UL, 1);
        SwapBits(ref s.Q4, ref s.Q5, 0x5555_5555_5555_5555UL, 1);
        SwapBits(ref s.Q6, ref s.Q7, 0x5555_5555_5555_5555UL, 1);
        SwapBits(ref s.Q0, ref s.Q2, 0x3333_3333_3333_3333UL, 2);
        SwapBits(ref s.Q1, ref s.Q3, 0x3333_3333_3333_3333UL, 2);
        SwapBits(ref s.Q4, ref s.Q6, 0x3333_3333_3333_3333UL, 2);
        SwapBits(ref s.Q5, ref s.Q7, 0x3333_3333_3333_3333UL, 2);
        SwapBits(ref s.Q0, ref s.Q4, 0x0F0F_0F0F_0F0F_0F0FUL, 4);
        SwapBits(ref s.Q1, ref s.Q5, 0x0F0F_0F0F_0F0F_0F0FUL, 4);
        SwapBits(ref s.Q2, ref s.Q6, 0x0F0F_0F0F_0F0F_0F0FUL, 4);
        SwapBits(ref s.Q3, ref s.Q7, 0x0F0F_0F0F_0F0F_0F0FUL, 4);
    }

    /// <summary>Swaps the bits of <paramref name="a"/> above <paramref name="mask"/> with those of <paramref name="b"/> in it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void SwapBits(ref ulong a, ref ulong b, ulong mask, int shift)
    {
        ulong t = ((a >> shift) ^ b) & mask;
        b ^= t;
        a ^= t << shift;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AddRoundKey(ref BitslicedState s, ulong* rk)
    {
        s.Q0 ^= rk[0]; s.Q1 ^= rk[1]; s.Q2 ^= rk[2]; s.Q3 ^= rk[3];
        s.Q4 ^= rk[4]; s.Q5 ^= rk[5]; s.Q6 ^= rk[6]; s.Q7 ^= rk[7];
    }

    /// <summary>
    /// Row r rotates left by r columns, so its 16-bit lane rotates right by 4r bits: rows 1 and 3
    /// by one nibble, then rows 2 and 3 by a byte (a delta swap). 13 operations instead of the 19
    /// that rotating each row on its own takes.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong ShiftRows(ulong x)
    {
        x = (x & 0x0000_FFFF_0000_FFFFUL) | ((x >> 4) & 0x0FFF_0000_0FFF_0000UL) | ((x << 12) & 0xF000_0000_F000_0000UL);
        return SwapBytesOfRows2And3(x);
    }

    /// <summary>Row r rotates right by r columns: its lane rotates left by 4r bits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong InvShiftRows(ulong x)
    {
        x = (x & 0x0000_FFFF_0000_FFFFUL) | ((x << 4) & 0xFFF0_0000_FFF0_0000UL) | ((x >> 12) & 0x000F_0000_000F_0000UL);
        return SwapBytesOfRows2And3(x);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong SwapBytesOfRows2And3(ulong x)
    {
        ulong t = ((x >> 8) ^ x) & 0x00FF_00FF_0000_0000UL;
        return x ^ t ^ (t << 8);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void ShiftRows(ref BitslicedState s)
    {
        s.Q0 = ShiftRows(s.Q0); s.Q1 = ShiftRows(s.Q1); s.Q2 = ShiftRows(s.Q2); s.Q3 = ShiftRows(s.Q3);
        s.Q4 = ShiftRows(s.Q4); s.Q5 = ShiftRows(s.Q5); s.Q6 = ShiftRows(s.Q6); s.Q7 = ShiftRows(s.Q7);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void InvShiftRows(ref BitslicedState s)
    {
        s.Q0 = InvShiftRows(s.Q0); s.Q1 = InvShiftRows(s.Q1); s.Q2 = InvShiftRows(s.Q2); s.Q3 = InvShiftRows(s.Q3);
        s.Q4 = InvShiftRows(s.Q4); s.Q5 = InvShiftRows(s.Q5); s.Q6 = InvShiftRows(s.Q6); s.Q7 = InvShiftRows(s.Q7);
    }

    /// <summary>The next row (r + 1 mod 4) moved into row r's lane.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong NextRow(ulong x) => BitOperations.RotateRight(x, 16);

    /// <summary>Row r + 2 moved into row r's lane.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong RowPlus2(ulong x) => BitOperations.RotateRight(x, 32);

    /// <summary>
    /// a'_r = 2·a_r ⊕ 3·a_{r+1} ⊕ a_{r+2} ⊕ a_{r+3} = 2·(a_r ⊕ a_{r+1}) ⊕ a_{r+1} ⊕ (a_{r+2} ⊕ a_{r+3}).
    /// With t = a ⊕ next(a): a' = xtime(t) ⊕ next(a) ⊕ rowPlus2(t). xtime on bit planes is a shift
    /// of plane index, with plane 7 folded into planes 0, 1, 3 and 4 (0x1B).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void MixColumns(ref BitslicedState s)
    {
        ulong q0 = s.Q0, q1 = s.Q1, q2 = s.Q2, q3 = s.Q3, q4 = s.Q4, q5 = s.Q5, q6 = s.Q6, q7 = s.Q7;
        ulong r0 = NextRow(q0), r1 = NextRow(q1), r2 = NextRow(q2), r3 = NextRow(q3);
        ulong r4 = NextRow(q4), r5 = NextRow(q5), r6 = NextRow(q6), r7 = NextRow(q7);
        ulong t0 = q0 ^ r0, t1 = q1 ^ r1, t2 = q2 ^ r2, t3 = q3 ^ r3;
        ulong t4 = q4 ^ r4, t5 = q5 ^ r5, t6 = q6 ^ r6, t7 = q7 ^ r7;
        s.Q0 = t7 ^ r0 ^ RowPlus2(t0);
        s.Q1 = t0 ^ t7 ^ r1 ^ RowPlus2(t1);
        s.Q2 = t1 ^ r2 ^ RowPlus2(t2);
        s.Q3 = t2 ^ t7 ^ r3 ^ RowPlus2(t3);
        s.Q4 = t3 ^ t7 ^ r4 ^ RowPlus2(t4);
        s.Q5 = t4 ^ r5 ^ RowPlus2(t5);
        s.Q6 = t5 ^ r6 ^ RowPlus2(t6);
        s.Q7 = t6 ^ r7 ^ RowPlus2(t7);
    }

    /// <summary>
    /// InvMixColumns = MixColumns ∘ (a_r ← a_r ⊕ 4·(a_r ⊕ a_{r+2})): the inverse matrix factors as
    /// the forward one times circ(5, 0, 4, 0) (Daemen and Rijmen, The Design of Rijndael, 4.1.3).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void InvMixColumns(ref BitslicedState s)
    {
        ulong u0 = s.Q0 ^ RowPlus2(s.Q0), u1 = s.Q1 ^ RowPlus2(s.Q1), u2 = s.Q2 ^ RowPlus2(s.Q2), u3 = s.Q3 ^ RowPlus2(s.Q3);
        ulong u4 = s.Q4 ^ RowPlus2(s.Q4), u5 = s.Q5 ^ RowPlus2(s.Q5), u6 = s.Q6 ^ RowPlus2(s.Q6), u7 = s.Q7 ^ RowPlus2(s.Q7);
        // xtime(xtime(u)), plane by plane.
        s.Q0 ^= u6;
        s.Q1 ^= u6 ^ u7;
        s.Q2 ^= u0 ^ u7;
        s.Q3 ^= u1 ^ u6;
        s.Q4 ^= u2 ^ u6 ^ u7;
        s.Q5 ^= u3 ^ u7;
        s.Q6 ^= u4;
        s.Q7 ^= u5;
        MixColumns(ref s);
    }
}
