using System.Text;
using ManagedDisks.Encryption;
using ManagedDisks.Encryption.Format;
using ManagedDisks.Encryption.Reencryption;

namespace ManagedDisks.Tests;

/// <summary>The header's <c>reencryption</c> object: round trip, absence, and values a reader must refuse.</summary>
public class ReencryptionHeaderTests
{
    private static KeySlot Slot(byte marker) => new()
    {
        KeyStore = "vault1", KeyName = "kek1", KeyVersion = "v2", WrapAlgorithm = "RSA-OAEP-256", WrappedDek = [marker, 2, 3], Created = DateTimeOffset.UnixEpoch,
    };

    private static DiskHeader Header(DataEncryptionKey dek) => new()
    {
        Uuid = Guid.NewGuid(),
        LogicalSize = 8 << 20,
        SectorSize = 4096,
        PayloadOffset = HeaderCodec.DefaultPayloadOffset,
        Digest = KeyDigests.Create(dek),
        KeySlots = [Slot(1)],
        Created = DateTimeOffset.UnixEpoch,
    };

    private static (DiskHeader Header, string? Problem) RoundTrip(DiskHeader header)
    {
        var area = new byte[HeaderCodec.CopyArea];
        HeaderCodec.Encode(header, 0, 7).CopyTo(area, 0);
        var decoded = HeaderCodec.TryDecode(area, 0, out string? problem);
        return (decoded?.Header!, problem);
    }

    [Test]
    public void TheReencryptionObjectRoundTripsWithItsHashes()
    {
        using var oldDek = DataEncryptionKey.Generate();
        using var newDek = DataEncryptionKey.Generate();
        byte[] hashes = Enumerable.Range(0, 256 * ReencryptionState.HashLength).Select(i => (byte)i).ToArray();
        var state = DiskReencryption.Plan(KeyDigests.Create(newDek), [Slot(9)]) with { Watermark = 3 << 20, ChunkHashes = hashes };
        var (decoded, problem) = RoundTrip(Header(oldDek) with { Reencryption = state });

        Assert.That(problem, Is.Null);
        var r = decoded.Reencryption!;
        Assert.That((r.Watermark, r.ChunkSize, r.ChunkSectors), Is.EqualTo((3L << 20, DiskReencryption.DefaultChunkSize, 256)));
        Assert.That(r.ChunkHashes, Is.EqualTo(hashes));
        Assert.That(r.KeySlots.Single().WrappedDek, Is.EqualTo(new byte[] { 9, 2, 3 }));
        Assert.That(KeyDigests.Matches(newDek, r.Digest), Is.True);
        Assert.That(KeyDigests.Matches(oldDek, r.Digest), Is.False);
        Assert.That(KeyDigests.Matches(oldDek, decoded.Digest), Is.True, "the current digest is still the old DEK's");
    }

    [Test]
    public void AHeaderWithoutReencryptionHasNoSuchMember()
    {
        using var dek = DataEncryptionKey.Generate();
        var header = Header(dek);
        string json = Encoding.UTF8.GetString(HeaderCodec.Encode(header, 0, 1).AsSpan(HeaderCodec.BinaryLength)).TrimEnd('\0');
        Assert.That(json, Does.Not.Contain("reencryption"), "headers of disks never re-keyed stay as they were");
        Assert.That(RoundTrip(header).Header.Reencryption, Is.Null);
    }

    [TestCase(4096 + 512, 0, "watermark")]
    [TestCase(-4096, 0, "watermark")]
    [TestCase(8 << 20, 1, "watermark")]        // a chunk in progress past the end
    [TestCase(0, -1, "16-byte")]               // hashes cut short
    public void AReaderRefusesAnImpossibleRecord(long watermark, int extraSectors, string problem)
    {
        using var dek = DataEncryptionKey.Generate();
        int hashBytes = extraSectors < 0 ? 7 : extraSectors * ReencryptionState.HashLength;
        var state = DiskReencryption.Plan(KeyDigests.Create(dek), [Slot(2)]) with { Watermark = watermark, ChunkHashes = new byte[hashBytes] };
        Assert.That(RoundTrip(Header(dek) with { Reencryption = state }).Problem, Does.Contain(problem));
    }

    [Test]
    public void AReaderRefusesAReencryptionWithoutTheNewKeySlot()
    {
        using var dek = DataEncryptionKey.Generate();
        var state = DiskReencryption.Plan(KeyDigests.Create(dek), []);
        Assert.That(RoundTrip(Header(dek) with { Reencryption = state }).Problem, Does.Contain("key slot"));
    }
}
