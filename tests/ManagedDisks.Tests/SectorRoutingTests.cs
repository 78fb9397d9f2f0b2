using ManagedDisks.Encryption;
using ManagedDisks.Encryption.Reencryption;

namespace ManagedDisks.Tests;

/// <summary>Which DEK a sector is read and written with while a disk is re-encrypted.</summary>
public class SectorRoutingTests
{
    private const int Sector = 4096;
    private DataEncryptionKey _oldDek = null!, _newDek = null!;
    private XtsSectorCipher _old = null!, _new = null!;

    [SetUp]
    public void SetUp()
    {
        _oldDek = DataEncryptionKey.Generate();
        _newDek = DataEncryptionKey.Generate();
        _old = new XtsSectorCipher(_oldDek);
        _new = new XtsSectorCipher(_newDek);
    }

    [TearDown]
    public void TearDown()
    {
        _old.Dispose();
        _new.Dispose();
        _oldDek.Dispose();
        _newDek.Dispose();
    }

    private static byte[] Plain(int sectors) => Enumerable.Range(0, sectors * Sector).Select(i => (byte)(i / Sector * 37 + i)).ToArray();

    private byte[] Encrypted(XtsSectorCipher cipher, byte[] plain, int sector)
    {
        var one = plain.AsSpan(sector * Sector, Sector).ToArray();
        cipher.Encrypt(one, one, (ulong)(100 + sector), Sector);
        return one;
    }

    /// <summary>
    /// Sectors 100..107: 100-101 below the watermark (new DEK); 102-105 the recorded chunk, where
    /// 102 and 104 still hold the recorded old ciphertext and 103 and 105 were converted; 106-107
    /// above the chunk (old DEK).
    /// </summary>
    [Test]
    public void EachSectorIsDecryptedWithTheDekItIsUnder()
    {
        byte[] plain = Plain(8);
        var stored = new byte[plain.Length];
        var recordedOld = new byte[4 * Sector];
        for (int s = 0; s < 8; s++)
        {
            bool underNew = s is 0 or 1 or 3 or 5;
            Encrypted(underNew ? _new : _old, plain, s).CopyTo(stored, s * Sector);
            if (s is >= 2 and <= 5) Encrypted(_old, plain, s).CopyTo(recordedOld, (s - 2) * Sector);
        }
        var routing = new SectorRouting(_old, _new, watermarkSector: 102, SectorHashes.Record(recordedOld, Sector));

        routing.Decrypt(stored, 100, Sector);
        Assert.That(stored, Is.EqualTo(plain));
    }

    [Test]
    public void ASectorInTheChunkThatMatchesNoRecordIsUnderTheNewDek()
    {
        byte[] plain = Plain(1);
        var hashesOfAHole = new byte[16]; // the sector was a hole when recorded; a client wrote it since
        var stored = Encrypted(_new, plain, 0);
        new SectorRouting(_old, _new, 100, hashesOfAHole).Decrypt(stored, 100, Sector);
        Assert.That(stored, Is.EqualTo(plain));
    }

    [Test]
    public void WritesUseTheNewDekBelowTheChunkEndAndTheOldAbove()
    {
        byte[] plain = Plain(6);
        var routing = new SectorRouting(_old, _new, watermarkSector: 101, new byte[2 * 16]); // chunk 101-102
        var written = (byte[])plain.Clone();
        routing.Encrypt(written, 100, Sector);
        for (int s = 0; s < 6; s++)
            Assert.That(written.AsSpan(s * Sector, Sector).ToArray(), Is.EqualTo(Encrypted(s <= 2 ? _new : _old, plain, s)), $"sector {100 + s}");
    }
}
